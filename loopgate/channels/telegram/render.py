"""What the operator sees on Telegram: a request's message, its buttons, its outcome.

Messages use HTML parse mode and every string that came from an agent (the
question, option labels, metadata, ids) is escaped, so ``<``, ``>`` and ``&``
show verbatim, and ``*``, ``_`` and ``[`` need no escaping at all (which is
why this is HTML and not Markdown). Pure functions: no I/O.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from aiogram.types import ForceReply, InlineKeyboardButton, InlineKeyboardMarkup

from loopgate.channels.model import console_page
from loopgate.channels.telegram.callbacks import CallbackSigner
from loopgate.domain.approval import approves
from loopgate.events import Action, Vote
from loopgate.views import RequestView, votes_of

# Telegram allows 4096 characters after entity parsing; these limits keep the
# visible text under it: 2500 + 10 x (30 + 60 + 5) + ids, deadline and outcome.
# The action's args come on top: what does not fit is cut first (``_fitted``).
MAX_MESSAGE_CHARS = 4096
_QUESTION_CHARS = 2500
_METADATA_ITEMS = 10
_METADATA_KEY_CHARS = 30
_METADATA_VALUE_CHARS = 60
_ID_CHARS = 64
_BUTTONS_PER_ROW = 3
_SHORT_LABEL = 12  # labels up to this long share a row
# The votes line fits what the outcome leaves: 5 x (20 + 3) + the count of the rest.
_VOTES_SHOWN = 5
_VOTER_CHARS = 20
_TOOL_CHARS = 64
_ARGS_SHOWN = 20
_ARG_KEY_CHARS = 30
_ARG_VALUE_CHARS = 100
SHORT_FINGERPRINT = 12
SHORT_GRANT_ID = 8
EDIT_LABEL = "✏️ Edit in console"
ALLOW_LABEL = "✅ Allow 30 min"
_TAG = re.compile(r"<[^>]*>")

Keyboard = InlineKeyboardMarkup | ForceReply | None


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _metadata_lines(metadata: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in list(metadata.items())[:_METADATA_ITEMS]:
        shown = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        key_html = escape(_clip(key, _METADATA_KEY_CHARS))
        lines.append(f"• <i>{key_html}</i>: {escape(_clip(shown, _METADATA_VALUE_CHARS))}")
    if len(metadata) > _METADATA_ITEMS:
        lines.append(f"• … {len(metadata) - _METADATA_ITEMS} more")
    return lines


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def action_lines(
    action: Action, fingerprint: str | None, args_shown: int = _ARGS_SHOWN
) -> list[str]:
    """The tool, one ``key: value`` line per arg (the first ``args_shown``), the fingerprint."""
    lines = [f"🛠 <b>{escape(_clip(action.tool, _TOOL_CHARS))}</b>"]
    items = list(action.args.items())
    for key, value in items[:args_shown]:
        key_html = escape(_clip(key, _ARG_KEY_CHARS))
        lines.append(f"  <code>{key_html}</code>: {escape(_clip(_shown(value), _ARG_VALUE_CHARS))}")
    if len(items) > args_shown:
        lines.append(f"  … {len(items) - args_shown} more")
    if fingerprint:
        lines.append(f"🔏 <code>{escape(fingerprint[:SHORT_FINGERPRINT])}</code>")
    return lines


def visible_length(text: str) -> int:
    """The characters Telegram counts: the text once our tags are parsed and entities read."""
    return len(html.unescape(_TAG.sub("", text)))


def _fitted(render: Callable[[int], str]) -> str:
    """``render(args_shown)`` with as many args as keep the message within Telegram's limit."""
    for args_shown in (_ARGS_SHOWN, 10, 5, 2, 0):
        text = render(args_shown)
        if visible_length(text) <= MAX_MESSAGE_CHARS:
            return text
    return text


def _body(view: RequestView, args_shown: int = _ARGS_SHOWN) -> list[str]:
    title = {
        "confirmation": "🔔 <b>Approval needed</b>",
        "choice": "🔘 <b>Choose one</b>",
        "input": "✍️ <b>Answer needed</b>",
    }[view.request_type]
    lines = [title, "", escape(_clip(view.message, _QUESTION_CHARS))]
    if view.action is not None:
        lines += ["", *action_lines(view.action, view.fingerprint, args_shown)]
    metadata = _metadata_lines(view.metadata)
    if metadata:
        lines += ["", *metadata]
    lines += [
        "",
        f"<code>{escape(_clip(view.session_id, _ID_CHARS))}</code>"
        f" · {escape(_clip(view.client_id, _ID_CHARS))}",
    ]
    return lines


def request_text(view: RequestView, names: Mapping[str, str] | None = None) -> str:
    """The message that asks the operator: question, metadata, votes, deadline, how to answer.

    ``names`` maps a voter's member id to the name to show (a member's
    username); an id without one is shown as it is. A request with an action
    shows its tool, args and short fingerprint; when the message would be
    too long for Telegram, args are cut first.
    """

    def render(args_shown: int) -> str:
        lines = _body(view, args_shown)
        if view.quorum > 1:
            lines.append(_tally(view, names or {}))
        deadline = f"⏳ expires {_when(view.expires_at)}" if view.expires_at else "⏳ no deadline"
        lines.append(deadline)
        if view.allow_text:
            lines.append(
                "↩️ Reply to this message to answer"
                + (" (or tap a button)." if view.options else ".")
            )
        return "\n".join(lines)

    return _fitted(render)


class IssuedGrant(NamedTuple):
    """The standing grant a decision issued, as its outcome mentions it."""

    grant_id: str
    seconds: float


def outcome_text(
    view: RequestView,
    responder: str | None = None,
    names: Mapping[str, str] | None = None,
    grant: IssuedGrant | None = None,
) -> str:
    """The message once the request is decided: the question, then who decided what, when.

    ``responder`` names who decided (a member's username); the view's
    ``responder`` id when not given. A request that took several votes (or
    asked for them) lists them, named by ``names`` as in :func:`request_text`.
    ``grant``: the approval also allowed the action for a while (say so).
    An approver's edit of the action's args is shown under the outcome.
    """

    def render(args_shown: int) -> str:
        lines = [*_body(view, args_shown), "", _outcome_line(view, responder, grant)]
        if view.edited and view.decided_action is not None:
            edited = action_lines(view.decided_action, view.decided_fingerprint, args_shown)
            lines += ["✏️ <b>Approved as edited</b>:", *edited]
        votes = votes_of(view)
        if view.quorum > 1 or len(votes) > 1:
            lines.append("🗳 Votes: " + (_votes(votes, names or {}) if votes else "none"))
        return "\n".join(lines)

    return _fitted(render)


def duration_text(seconds: float) -> str:
    """``30 min``, ``2 h``, ``7 days``: a grant's length as people say it."""
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = round(seconds / 3600)
    if hours < 48:
        return f"{hours} h"
    return f"{round(seconds / 86400)} days"


def _tally(view: RequestView, names: Mapping[str, str]) -> str:
    """``1 of 2 approvals — alice ✅``: how far an open request is from its quorum."""
    approvals = sum(vote.approves for vote in view.votes)
    tally = f"🗳 {approvals} of {view.quorum} approvals"
    return f"{tally} — {_votes(view.votes, names)}" if view.votes else tally


def _votes(votes: tuple[Vote, ...], names: Mapping[str, str]) -> str:
    shown = ", ".join(
        escape(_clip(names.get(v.member, v.member), _VOTER_CHARS))
        + (" ✅" if v.approves else " ❌")
        for v in votes[:_VOTES_SHOWN]
    )
    more = len(votes) - _VOTES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _outcome_line(view: RequestView, responder: str | None, grant: IssuedGrant | None) -> str:
    when = _when(view.decided_at) if view.decided_at else "?"
    who = escape(_clip(responder or view.responder or "?", _ID_CHARS))
    match view.status:
        case "answered":
            verdict = "✅ <b>Approved</b>" if view.approved else "❌ <b>Rejected</b>"
            if view.approved and grant is not None:
                short = escape(grant.grant_id[:SHORT_GRANT_ID])
                verdict = (
                    f"✅ <b>Approved and allowed for {duration_text(grant.seconds)}</b>"
                    f" (grant <code>{short}</code>)"
                )
            answer = escape(_clip(view.response or "", 200))
            return f"{verdict}: “{answer}” by {who} at {when}"
        case "expired":
            outcome = {True: "approved", False: "rejected", None: "no decision"}[view.approved]
            return f"⌛ <b>Expired</b> at {when} ({outcome})"
        case "cancelled":
            return f"🚫 <b>Cancelled</b> by {who} at {when}"
        case _:
            return "⏳ still open"


def keyboard(view: RequestView, signer: CallbackSigner, console_url: str = "") -> Keyboard:
    """A button per option; a reply prompt for an open question without options.

    A request whose action may be edited gets "✏️ Edit in console" (a link to
    its page under ``console_url``, when that is an http(s) URL); one that may
    be granted, with a quorum of 1, "✅ Allow 30 min": approve, and approve
    the same action of the session for 30 minutes (a standing grant).
    """
    rows = _option_rows(view, signer)
    if rows is None:
        return ForceReply(input_field_placeholder="Your answer") if view.allow_text else None
    extra: list[InlineKeyboardButton] = []
    if view.action is not None and view.grantable and view.quorum == 1:
        approving = next((i for i, o in enumerate(view.options) if approves(o)), None)
        if approving is not None:
            data = signer.sign(view.request_id, approving, grant=True)
            extra.append(InlineKeyboardButton(text=ALLOW_LABEL, callback_data=data))
    if view.action is not None and view.editable:
        url = console_page(console_url, view.request_id)
        if url is not None:
            extra.append(InlineKeyboardButton(text=EDIT_LABEL, url=url))
    if extra:
        rows.append(extra)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _option_rows(
    view: RequestView, signer: CallbackSigner
) -> list[list[InlineKeyboardButton]] | None:
    """The option buttons, short labels sharing rows; None for a request without options."""
    if view.options:
        rows: list[list[InlineKeyboardButton]] = []
        for index, option in enumerate(view.options):
            button = InlineKeyboardButton(
                text=option.label, callback_data=signer.sign(view.request_id, index)
            )
            fits = (
                rows
                and len(rows[-1]) < _BUTTONS_PER_ROW
                and len(option.label) <= _SHORT_LABEL
                and all(len(b.text) <= _SHORT_LABEL for b in rows[-1])
            )
            if fits:
                rows[-1].append(button)
            else:
                rows.append([button])
        return rows
    return None
