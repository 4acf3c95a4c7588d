"""What the operator sees on Telegram: a request's message, its buttons, its outcome.

Messages use HTML parse mode and every string that came from an agent (the
question, option labels, metadata, ids) is escaped, so ``<``, ``>`` and ``&``
show verbatim, and ``*``, ``_`` and ``[`` need no escaping at all (which is
why this is HTML and not Markdown). Pure functions: no I/O.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from aiogram.types import ForceReply, InlineKeyboardButton, InlineKeyboardMarkup

from loopgate.channels.telegram.callbacks import CallbackSigner
from loopgate.events import Vote
from loopgate.views import RequestView, votes_of

# Telegram allows 4096 characters after entity parsing; these limits keep the
# visible text under it: 2500 + 10 x (30 + 60 + 5) + ids, deadline and outcome.
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


def _body(view: RequestView) -> list[str]:
    title = {
        "confirmation": "🔔 <b>Approval needed</b>",
        "choice": "🔘 <b>Choose one</b>",
        "input": "✍️ <b>Answer needed</b>",
    }[view.request_type]
    lines = [title, "", escape(_clip(view.message, _QUESTION_CHARS))]
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
    username); an id without one is shown as it is.
    """
    lines = _body(view)
    if view.quorum > 1:
        lines.append(_tally(view, names or {}))
    lines.append(f"⏳ expires {_when(view.expires_at)}" if view.expires_at else "⏳ no deadline")
    if view.allow_text:
        lines.append(
            "↩️ Reply to this message to answer" + (" (or tap a button)." if view.options else ".")
        )
    return "\n".join(lines)


def outcome_text(
    view: RequestView, responder: str | None = None, names: Mapping[str, str] | None = None
) -> str:
    """The message once the request is decided: the question, then who decided what, when.

    ``responder`` names who decided (a member's username); the view's
    ``responder`` id when not given. A request that took several votes (or
    asked for them) lists them, named by ``names`` as in :func:`request_text`.
    """
    lines = [*_body(view), "", _outcome_line(view, responder)]
    votes = votes_of(view)
    if view.quorum > 1 or len(votes) > 1:
        lines.append("🗳 Votes: " + (_votes(votes, names or {}) if votes else "none"))
    return "\n".join(lines)


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


def _outcome_line(view: RequestView, responder: str | None) -> str:
    when = _when(view.decided_at) if view.decided_at else "?"
    who = escape(_clip(responder or view.responder or "?", _ID_CHARS))
    match view.status:
        case "answered":
            verdict = "✅ <b>Approved</b>" if view.approved else "❌ <b>Rejected</b>"
            answer = escape(_clip(view.response or "", 200))
            return f"{verdict}: “{answer}” by {who} at {when}"
        case "expired":
            outcome = {True: "approved", False: "rejected", None: "no decision"}[view.approved]
            return f"⌛ <b>Expired</b> at {when} ({outcome})"
        case "cancelled":
            return f"🚫 <b>Cancelled</b> by {who} at {when}"
        case _:
            return "⏳ still open"


def keyboard(view: RequestView, signer: CallbackSigner) -> Keyboard:
    """A button per option; a reply prompt for an open question without options."""
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
        return InlineKeyboardMarkup(inline_keyboard=rows)
    if view.allow_text:
        return ForceReply(input_field_placeholder="Your answer")
    return None
