"""Query-string parameters shared by the HTTP surfaces."""

from __future__ import annotations

import math

from aiohttp import web

from loopgate.errors import ValidationFailed
from loopgate.web.keys import CONFIG


def required(request: web.Request, name: str) -> str:
    value = request.query.get(name, "").strip()
    if not value:
        raise ValidationFailed(f"{name}: missing (give it as ?{name}=...)")
    return value


def wait_seconds(request: web.Request) -> float:
    """``wait=N``: seconds to long-poll, 0 when absent, capped at ``requests.max_wait_seconds``."""
    raw = request.query.get("wait")
    if raw is None or raw == "":
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ValidationFailed(f"wait: expected a number of seconds >= 0, got {raw!r}")
    return min(seconds, float(request.app[CONFIG].requests.max_wait_seconds))


def client_gone(request: web.Request) -> bool:
    """True once the client hung up (aiohttp does not cancel handlers for it)."""
    transport = request.transport
    return transport is None or transport.is_closing()
