"""What an approver receives by email: the request's mail, its follow-ups. Pure functions, no I/O.

Every mail has a plain-text part and an HTML part saying the same thing. The
request's mail shows the message, the action (tool and args) when there is
one, the metadata, one link per option, whom it was sent to and when the
request expires. A follow-up (the outcome, a reminder) is a reply to it
(``In-Reply-To`` and ``References`` its ``Message-ID``), so mail clients keep
them in one thread. Everything that came from an agent is escaped in the HTML
part; nothing in either part is ever executed or fetched.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import msgspec

from loopgate.views import RequestView, decided_by, outcome_of

SUBJECT_CHARS = 120
_VALUE_CHARS = 200
SHORT_FINGERPRINT = 12


@dataclass(frozen=True)
class OptionLink:
    """An option's label and the signed link that answers with it."""

    label: str
    url: str


@dataclass(frozen=True)
class Envelope:
    """Who a mail is from and to, its own id, and the mail it answers (for a follow-up)."""

    sender: str
    to: str
    message_id: str
    in_reply_to: str | None = None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def first_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), "(no message)")


def subject(view: RequestView) -> str:
    # Header folding copes with any length; the cap keeps inbox lists readable.
    return _clip(f"Approval needed: {first_line(view.message)}", SUBJECT_CHARS)


def outcome_line(view: RequestView, names: Mapping[str, str]) -> str:
    """How a final request ended, for people: ``Decided: approved by alice``."""
    by = decided_by(view)
    who = names.get(by.id or "", by.id or "someone") if by is not None else "someone"
    match outcome_of(view):
        case "approved" | "rejected" as outcome if by is not None and by.kind == "policy":
            return f"Decided: {outcome} by policy {by.id}"
        case "approved" | "rejected" as outcome:
            return f"Decided: {outcome} by {who}"
        case "answered":
            return f"Answered by {who}: {_clip(view.response_text or '', _VALUE_CHARS)}"
        case "expired":
            return f"Expired without an answer (on timeout: {view.on_timeout})"
        case "cancelled":
            return "Cancelled by the agent that asked"
        case _:
            return "Still open"


def _pairs(view: RequestView) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The action's args and the metadata, as (key, shown value) pairs."""
    args = [
        (k, _clip(_shown(v), _VALUE_CHARS))
        for k, v in (view.action.args if view.action else {}).items()
    ]
    metadata = [(k, _clip(_shown(v), _VALUE_CHARS)) for k, v in view.metadata.items()]
    return args, metadata


def _expiry(view: RequestView) -> str:
    if view.expires_at is None:
        return "It does not expire."
    return f"It expires at {when(view.expires_at)}."


def _quorum(view: RequestView) -> str | None:
    return f"It needs {view.quorum} approvals." if view.quorum > 1 else None


def request_text(view: RequestView, links: Sequence[OptionLink], to: str, console_url: str) -> str:
    """The request's mail as plain text: also what ``RequestDelivered.shown_text`` keeps."""
    args, metadata = _pairs(view)
    lines = ["Approval needed", "", view.message]
    if view.action is not None:
        lines += ["", f"Action: {view.action.tool}"]
        lines += [f"  {key}: {value}" for key, value in args]
        if view.fingerprint:
            lines.append(f"  fingerprint: {view.fingerprint[:SHORT_FINGERPRINT]}")
    if metadata:
        lines += ["", "Details:", *(f"  {key}: {value}" for key, value in metadata)]
    lines.append("")
    if links:
        lines.append("Answer: each link opens a page where you confirm with one more click.")
        lines += [f"  {link.label}: {link.url}" for link in links]
    else:
        lines.append(f"It needs a written answer: {console_url}/console/requests/{view.request_id}")
    lines += ["", f"Sent to {to}, an approver of request {view.request_id}."]
    lines += [line for line in (_quorum(view), _expiry(view)) if line]
    return "\n".join(lines) + "\n"


def _html_pairs(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(
        f'<tr><th align="left"><code>{html.escape(k)}</code></th><td>{html.escape(v)}</td></tr>'
        for k, v in pairs
    )
    return f"<table>{rows}</table>"


def request_html(view: RequestView, links: Sequence[OptionLink], to: str, console_url: str) -> str:
    args, metadata = _pairs(view)
    parts = [
        "<h2>Approval needed</h2>",
        f'<p style="white-space:pre-wrap">{html.escape(view.message)}</p>',
    ]
    if view.action is not None:
        parts.append(f"<p>Action: <strong>{html.escape(view.action.tool)}</strong></p>")
        parts.append(_html_pairs(args))
        if view.fingerprint:
            parts.append(
                f"<p>Fingerprint <code>{html.escape(view.fingerprint[:SHORT_FINGERPRINT])}</code>"
                "</p>"
            )
    if metadata:
        parts += ["<p>Details:</p>", _html_pairs(metadata)]
    if links:
        parts.append("<p>Each link opens a page where you confirm with one more click.</p>")
        parts.append(
            "<p>"
            + " ".join(
                f'<a href="{html.escape(link.url)}">{html.escape(link.label)}</a>' for link in links
            )
            + "</p>"
        )
    else:
        page = f"{console_url}/console/requests/{view.request_id}"
        parts.append(
            f'<p>It needs a written answer: <a href="{html.escape(page)}">'
            "answer in the console</a>.</p>"
        )
    notes = [f"Sent to {to}, an approver of request {view.request_id}."]
    notes += [line for line in (_quorum(view), _expiry(view)) if line]
    parts.append(f"<p><small>{html.escape(' '.join(notes))}</small></p>")
    return "\n".join(parts)


def _mail(envelope: Envelope, title: str, text: str, html_body: str, at: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = envelope.sender
    message["To"] = envelope.to
    message["Subject"] = title
    message["Date"] = format_datetime(at)
    message["Message-ID"] = envelope.message_id
    if envelope.in_reply_to is not None:
        message["In-Reply-To"] = envelope.in_reply_to
        message["References"] = envelope.in_reply_to
    # Never answered automatically by vacation responders (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(f"<!doctype html><html><body>{html_body}</body></html>", subtype="html")
    return message


def request_mail(
    view: RequestView,
    envelope: Envelope,
    links: Sequence[OptionLink],
    *,
    console_url: str,
    at: datetime,
) -> EmailMessage:
    """The mail that asks: the request, one link per option."""
    text = request_text(view, links, envelope.to, console_url)
    body = request_html(view, links, envelope.to, console_url)
    return _mail(envelope, subject(view), text, body, at)


def follow_up_mail(
    view: RequestView, envelope: Envelope, note: str, *, at: datetime
) -> EmailMessage:
    """A reply in the request's thread saying ``note`` (its outcome, or a reminder)."""
    text = f"{note}\n\n{view.message}\n\nRequest {view.request_id}.\n"
    body = (
        f"<p><strong>{html.escape(note)}</strong></p>"
        f'<p style="white-space:pre-wrap">{html.escape(view.message)}</p>'
        f"<p><small>Request {html.escape(view.request_id)}.</small></p>"
    )
    return _mail(envelope, f"Re: {subject(view)}", text, body, at)


def decided_note(view: RequestView, names: Mapping[str, str]) -> str:
    """The outcome line with its time: ``Decided: approved by alice at 2026-… UTC.``"""
    line = outcome_line(view, names)
    return f"{line} at {when(view.decided_at)}." if view.decided_at else f"{line}."


def address_link_mail(
    envelope: Envelope, url: str, username: str, expires_at: datetime, *, at: datetime
) -> EmailMessage:
    """The mail that confirms an address for a member: one link to a confirm page."""
    text = (
        f"{username} asked Loopgate to send approval requests to this address.\n\n"
        "To confirm, open this link and press the button on its page"
        f" (before {when(expires_at)}):\n"
        f"  {url}\n\n"
        "If you did not ask for this, ignore this mail: nothing changes.\n"
    )
    body = (
        f"<p>{html.escape(username)} asked Loopgate to send approval requests to this address.</p>"
        f'<p><a href="{html.escape(url)}">Confirm this address</a> (before {when(expires_at)}),'
        " then press the button on the page.</p>"
        "<p><small>If you did not ask for this, ignore this mail: nothing changes.</small></p>"
    )
    return _mail(envelope, "Confirm your address for Loopgate", text, body, at)
