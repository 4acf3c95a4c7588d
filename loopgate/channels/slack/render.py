"""What an approver sees on Slack: a request's Block Kit message, its buttons, its outcome.

Slack's ``mrkdwn`` needs only ``&``, ``<`` and ``>`` escaped (they start
links and mentions), so every string that came from an agent goes through
:func:`escape` and shows verbatim; nothing an agent writes can ping
``@channel`` or hide a link. A button's ``value`` carries the request id and
the option's index (:func:`button_value`): Slack signs the whole interactivity
payload, so it needs no signature of its own. Pure functions: no I/O.

Slack's limits shape the text: a section's text is at most 3000 characters,
a field 2000, a button's label 75, a message's ``text`` (the notification and
the screen reader's version) 40000.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from loopgate.channels.model import Nudge, console_page
from loopgate.domain.approval import approves
from loopgate.events import Action, Vote
from loopgate.views import RequestView, votes_of

Block = dict[str, Any]

OPTION_ACTION = "loopgate_option"
"""``action_id`` prefix of an option's button: ``loopgate_option_<index>``."""
CONSOLE_ACTION = "loopgate_console"
"""``action_id`` of the "Edit in console" link button (Slack reports its clicks too)."""
EDIT_LABEL = "✏️ Edit in console"
OPEN_LABEL = "Answer in console"
_QUESTION_CHARS = 2500
_SECTION_CHARS = 3000
_METADATA_ITEMS = 10  # a section holds 10 fields at most
_METADATA_KEY_CHARS = 30
_METADATA_VALUE_CHARS = 200
_ID_CHARS = 64
_LABEL_CHARS = 75
_TOOL_CHARS = 64
_ARGS_SHOWN = 20
_ARG_KEY_CHARS = 30
_ARG_VALUE_CHARS = 100
_VOTES_SHOWN = 5
_VOTER_CHARS = 20
_SHORT_FINGERPRINT = 12
_TITLES = {
    "confirmation": "🔔 *Approval needed*",
    "choice": "🔘 *Choose one*",
    "input": "✍️ *Answer needed*",
}


@dataclass(frozen=True)
class SlackMessage:
    """A message as ``chat.postMessage`` / ``chat.update`` take it.

    ``text`` is the notification and the fallback where blocks do not show;
    it is also what the audit records the approver saw.
    """

    text: str
    blocks: list[Block]


class ButtonValue(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What an option's button carries back: the request and the option's index."""

    request_id: str
    option: int


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def button_value(request_id: str, option: int) -> str:
    return msgspec.json.encode(ButtonValue(request_id=request_id, option=option)).decode()


def read_button_value(value: str) -> ButtonValue:
    """The request and option an option's button stands for; ``ValueError`` if not ours."""
    try:
        return msgspec.json.decode(value, type=ButtonValue)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a Loopgate button value: {exc}") from None


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, _SECTION_CHARS)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def action_text(action: Action, fingerprint: str | None) -> str:
    """The tool, one ``key: value`` line per arg (the first 20), the short fingerprint."""
    lines = [f"🛠 *{escape(_clip(action.tool, _TOOL_CHARS))}*"]
    items = list(action.args.items())
    for key, value in items[:_ARGS_SHOWN]:
        shown = escape(_clip(_shown(value), _ARG_VALUE_CHARS))
        lines.append(f"• `{escape(_clip(key, _ARG_KEY_CHARS))}`: {shown}")
    if len(items) > _ARGS_SHOWN:
        lines.append(f"• … {len(items) - _ARGS_SHOWN} more")
    if fingerprint:
        lines.append(f"🔏 `{escape(fingerprint[:_SHORT_FINGERPRINT])}`")
    return "\n".join(lines)


def _metadata_fields(metadata: dict[str, Any]) -> list[dict[str, str]]:
    fields = []
    for key, value in list(metadata.items())[:_METADATA_ITEMS]:
        key_text = escape(_clip(key, _METADATA_KEY_CHARS))
        value_text = escape(_clip(_shown(value), _METADATA_VALUE_CHARS))
        fields.append({"type": "mrkdwn", "text": f"*{key_text}*\n{value_text}"})
    if len(metadata) > _METADATA_ITEMS:  # the last field says how many more there are
        fields[-1] = {"type": "mrkdwn", "text": f"… {len(metadata) - _METADATA_ITEMS + 1} more"}
    return fields


def _body(view: RequestView) -> list[Block]:
    blocks = [
        _section(f"{_TITLES[view.request_type]}\n\n{escape(_clip(view.message, _QUESTION_CHARS))}")
    ]
    if view.action is not None:
        blocks.append(_section(action_text(view.action, view.fingerprint)))
    fields = _metadata_fields(view.metadata)
    if fields:
        blocks.append({"type": "section", "fields": fields})
    session = escape(_clip(view.session_id, _ID_CHARS))
    blocks.append(_context(f"`{session}` · {escape(_clip(view.client_id, _ID_CHARS))}"))
    return blocks


def _votes(votes: tuple[Vote, ...], names: Mapping[str, str]) -> str:
    shown = ", ".join(
        escape(_clip(names.get(v.member, v.member), _VOTER_CHARS))
        + (" ✅" if v.approves else " ❌")
        for v in votes[:_VOTES_SHOWN]
    )
    more = len(votes) - _VOTES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def tally_text(view: RequestView, names: Mapping[str, str]) -> str:
    """``1 of 2 approvals — alice ✅``: how far an open request is from its quorum."""
    approvals = sum(vote.approves for vote in view.votes)
    tally = f"🗳 {approvals} of {view.quorum} approvals"
    return f"{tally} — {_votes(view.votes, names)}" if view.votes else tally


def _buttons(view: RequestView, console_url: str) -> list[Block]:
    """One button per option, and the console link: to edit the action, or to answer in text."""
    elements: list[dict[str, Any]] = []
    for index, option in enumerate(view.options):
        button: dict[str, Any] = {
            "type": "button",
            "action_id": f"{OPTION_ACTION}_{index}",
            "text": {"type": "plain_text", "text": _clip(option.label, _LABEL_CHARS)},
            "value": button_value(view.request_id, index),
        }
        if view.request_type == "confirmation":
            button["style"] = "primary" if approves(option) else "danger"
        elements.append(button)
    url = console_page(console_url, view.request_id)
    label = EDIT_LABEL if view.action is not None and view.editable else None
    if not view.options:  # a free-text answer: Slack buttons cannot take one
        label = OPEN_LABEL
    if url is not None and label is not None:
        elements.append(
            {
                "type": "button",
                "action_id": CONSOLE_ACTION,
                "text": {"type": "plain_text", "text": label},
                "url": url,
            }
        )
    return (
        [{"type": "actions", "block_id": "loopgate_answer", "elements": elements}]
        if elements
        else []
    )


def request_message(
    view: RequestView, names: Mapping[str, str] | None = None, console_url: str = ""
) -> SlackMessage:
    """The message that asks: question, action, metadata, votes so far, deadline, buttons.

    ``names`` maps a voter's member id to the name to show; ``console_url``
    is where "Edit in console" links to (no such button unless it is http(s)).
    """
    blocks = _body(view)
    status = []
    if view.quorum > 1:
        status.append(tally_text(view, names or {}))
    status.append(f"⏳ expires {_when(view.expires_at)}" if view.expires_at else "⏳ no deadline")
    blocks.append(_context("\n".join(status)))
    blocks += _buttons(view, console_url)
    return SlackMessage(text=_plain(view, status), blocks=blocks)


def _outcome_line(view: RequestView, responder: str | None) -> str:
    when = _when(view.decided_at) if view.decided_at else "?"
    who = escape(_clip(responder or view.responder or "?", _ID_CHARS))
    match view.status:
        case "answered":
            verdict = "✅ *Approved*" if view.approved else "❌ *Rejected*"
            answer = escape(_clip(view.response or "", 200))
            return f"{verdict}: “{answer}” by {who} at {when}"
        case "expired":
            outcome = {True: "approved", False: "rejected", None: "no decision"}[view.approved]
            return f"⌛ *Expired* at {when} ({outcome})"
        case "cancelled":
            return f"🚫 *Cancelled* by {who} at {when}"
        case _:
            return "⏳ still open"


def outcome_message(
    view: RequestView, responder: str | None = None, names: Mapping[str, str] | None = None
) -> SlackMessage:
    """The message once the request is decided: who decided what, when; no buttons.

    ``responder`` names who decided (a member's username; the view's
    ``responder`` id when not given). The votes are listed when there were
    several (or the request asked for several); an approver's edit of the
    action's args is shown under the outcome.
    """
    blocks = _body(view)
    outcome = [_outcome_line(view, responder)]
    if view.edited and view.decided_action is not None:
        edited = action_text(view.decided_action, view.decided_fingerprint)
        outcome.append(f"✏️ *Approved as edited*:\n{edited}")
    votes = votes_of(view)
    if view.quorum > 1 or len(votes) > 1:
        outcome.append("🗳 Votes: " + (_votes(votes, names or {}) if votes else "none"))
    blocks.append(_section("\n".join(outcome)))
    return SlackMessage(text=_plain(view, outcome), blocks=blocks)


_AT_EXPIRY = {
    "reject": "it is rejected",
    "approve": "it is approved",
    "none": "it closes without a decision",
}


def local_time(at: datetime) -> str:
    """A time Slack shows in each reader's own time zone (``<!date>``), UTC where it cannot."""
    return f"<!date^{int(at.timestamp())}^{{time}}|{at.strftime('%H:%M')} UTC>"


def nudge_text(view: RequestView, kind: Nudge) -> str:
    """A reminder, or the time the request expires and what happens then (a thread reply)."""
    if view.expires_at is None:  # a warning is only ever recorded for a request that expires
        return "🔔 Reminder: still waiting for your answer."
    expires = local_time(view.expires_at)
    if kind == "reminder":
        return f"🔔 Reminder: still waiting for your answer (expires at {expires})."
    return f"⌛ Expires at {expires}: answer before then, or {_AT_EXPIRY[view.on_timeout]}."


def _plain(view: RequestView, status: list[str]) -> str:
    """The notification text: the title, the question, the action's tool, the status lines."""
    lines = [
        _TITLES[view.request_type].replace("*", ""),
        escape(_clip(view.message, _QUESTION_CHARS)),
    ]
    if view.action is not None:
        lines.append(f"🛠 {escape(_clip(view.action.tool, _TOOL_CHARS))}")
    return "\n".join([*lines, *status])
