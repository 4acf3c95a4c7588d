"""Path and query-string parameters and JSON bodies, read the same way by every HTTP surface.

A NUL character is refused everywhere a client can put one: in a body by
:func:`loopgate.wire.decode_body`, in the path and the query string by
:func:`nul_middleware`, in a console form by ``console_pages.form_field``.
Postgres cannot store or even compare a string holding NUL, so letting one
through would make the same request a 500 there and a 404 on SQLite.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime
from typing import TypeVar

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from loopgate.errors import ValidationFailed
from loopgate.views import RequestView
from loopgate.web.keys import CONFIG
from loopgate.wire import decode_body

T = TypeVar("T", bound=msgspec.Struct)

NUL = "\x00"


def refuse_nul(name: str, value: str) -> str:
    """``value``, unless it holds a NUL: then a 400 naming ``name``."""
    if NUL in value:
        raise ValidationFailed(f"{name}: must not contain NUL characters")
    return value


@web.middleware
async def nul_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A NUL in a path parameter, the path or the query string is a 400, on every route."""
    for name, value in request.match_info.items():
        refuse_nul(name, value)
    refuse_nul("path", request.path)
    for name, value in request.query.items():
        refuse_nul("query parameter name", name)
        refuse_nul(name, value)
    return await handler(request)


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
        refuse_nul("cursor", request_id)
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
