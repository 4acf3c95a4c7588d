"""Query-string parameters and JSON bodies, read the same way by every HTTP surface."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from typing import TypeVar

import msgspec
from aiohttp import web

from loopgate.errors import ValidationFailed
from loopgate.views import RequestView
from loopgate.web.keys import CONFIG
from loopgate.wire import decode_body

T = TypeVar("T", bound=msgspec.Struct)


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


def encode_cursor(view: RequestView) -> str:
    """A page's ``next_cursor``: where the newest-first list goes on after ``view``."""
    raw = f"{view.created_at.isoformat()}|{view.request_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``after`` position a cursor from :func:`encode_cursor` names."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, request_id = raw.split("|", 1)
        return datetime.fromisoformat(created_at), request_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed("cursor: not a cursor this API returned") from exc


async def read_body(request: web.Request, shape: type[T]) -> T:
    """Read the request's body and decode it as JSON into ``shape``.

    The Content-Type header is not checked (curl users forget it). A body over
    ``client_max_size`` raises aiohttp's 413, which the error middleware renders.
    Raises :class:`InvalidJSON` or :class:`ValidationFailed` otherwise.
    """
    return decode_body(await request.read(), shape)
