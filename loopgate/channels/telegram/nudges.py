"""Short follow-ups to a request's message: a reminder, an expiry warning.

Sent as replies to the request's message in each chat that shows it, so the
operator's client jumps to the question with its buttons. Pure functions: no I/O.
"""

from __future__ import annotations

from loopgate.views import RequestView

_AT_EXPIRY = {
    "reject": "it is rejected",
    "approve": "it is approved",
    "none": "it closes without a decision",
}


def reminder_text(view: RequestView) -> str:
    if view.expires_at is None:
        return "🔔 Reminder: still waiting for your answer."
    return f"🔔 Reminder: still waiting for your answer (expires at {_clock(view)} UTC)."


def expiry_warning_text(view: RequestView) -> str:
    """When the request expires and what happens then; the question is right above it."""
    if view.expires_at is None:  # a warning is only ever recorded for a request that expires
        return reminder_text(view)
    return (
        f"⌛ Expires at {_clock(view)} UTC: answer before then, or {_AT_EXPIRY[view.on_timeout]}."
    )


def _clock(view: RequestView) -> str:
    assert view.expires_at is not None
    return view.expires_at.strftime("%H:%M")
