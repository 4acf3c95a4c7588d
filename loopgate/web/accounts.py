"""Accounts and API keys over HTTP, in the reference server's shapes.

``POST /api/auth/register`` and ``POST /api/auth/login`` are public; the key
routes (``/api/user/apikeys``) need the login token (JWT) that login returns,
which the auth middleware checks before these handlers run. A raw key is shown
once, in the answer to its creation; lists never carry it, nor its hash.

A key's ``kind`` is ``agent`` (the default: it asks, reads, waits and cancels,
but never answers) or ``operator`` (it also answers, as the user who made it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from loopgate.accounts.users import ApiKeyView
from loopgate.domain.account import MAX_LABEL_CHARS
from loopgate.errors import Forbidden
from loopgate.events import ApiKeyKind
from loopgate.web.auth import actor_of
from loopgate.web.describe import describe
from loopgate.web.keys import ACCOUNTS, CONFIG, REQUEST_ID
from loopgate.web.params import read_body
from loopgate.web.responses import json_response
from loopgate.wire import Body, decode_body

routes = web.RouteTableDef()


class CredentialsBody(Body, frozen=True, kw_only=True):
    """``POST /api/auth/register`` and ``/api/auth/login``; the account service checks the rules."""

    username: str
    password: str


class CreateKeyBody(Body, frozen=True, kw_only=True):
    """``POST /api/user/apikeys``: every field optional; the body may be left out."""

    label: Annotated[str, msgspec.Meta(max_length=MAX_LABEL_CHARS)] | None = None
    # A moment without a zone would be read differently by client and server.
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    kind: ApiKeyKind = "agent"

    def __post_init__(self) -> None:
        # Labels are shown in lists and logs; Postgres would refuse a NUL outright.
        if self.label is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.label):
            raise ValueError("label: must not contain control characters")


class Registered(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    user_id: str
    username: str


class LoggedIn(msgspec.Struct, frozen=True, kw_only=True):
    """``token`` is the login token (JWT) the ``/api/user`` routes and the API take."""

    token: str
    user_id: str
    username: str


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A key as lists show it: never the raw key, never its hash."""

    id: str
    label: str | None
    kind: ApiKeyKind
    prefix: str
    is_active: bool
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class NewKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key just made: ``raw_key`` is shown this once."""

    id: str
    raw_key: str
    label: str | None
    kind: ApiKeyKind
    prefix: str
    expires_at: str | None
    created_at: str | None


class Revoked(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    id: str


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def key_info(key: ApiKeyView, now: datetime) -> KeyInfo:
    return KeyInfo(
        id=key.key_id,
        label=key.label,
        kind=key.kind,
        prefix=key.prefix,
        is_active=key.is_active_at(now),
        created_at=_iso(key.created_at),
        expires_at=_iso(key.expires_at),
        last_used_at=_iso(key.last_used_at),
        revoked_at=_iso(key.revoked_at),
    )


@routes.post("/api/auth/register")
@describe(
    "Create a user (unless auth.registration is closed)",
    body=CredentialsBody,
    replies={201: Registered},
    errors=(403, 409),
)
async def register(request: web.Request) -> web.Response:
    if request.app[CONFIG].auth.registration == "closed":
        raise Forbidden(
            "registration is closed on this server; an operator adds users with "
            "`loopgate user create`",
            code="registration_closed",
        )
    body = await read_body(request, CredentialsBody)
    user = await request.app[ACCOUNTS].register_user(
        body.username, body.password, correlation_id=request.get(REQUEST_ID)
    )
    return json_response(
        Registered(
            message="User registered successfully", user_id=user.user_id, username=user.username
        ),
        status=201,
    )


@routes.post("/api/auth/login")
@describe(
    "Log in: a login token (JWT) for the /api/user routes and the API",
    body=CredentialsBody,
    replies={200: LoggedIn},
    errors=(401, 429),
)
async def login(request: web.Request) -> web.Response:
    body = await read_body(request, CredentialsBody)
    token, user = await request.app[ACCOUNTS].login(
        body.username,
        body.password,
        address=request.remote,
        correlation_id=request.get(REQUEST_ID),
    )
    return json_response(LoggedIn(token=token, user_id=user.user_id, username=user.username))


@routes.post("/api/user/apikeys")
@describe(
    "Make an API key; the raw key is in this answer only",
    body=CreateKeyBody,
    body_required=False,
    replies={201: NewKey},
)
async def create_key(request: web.Request) -> web.Response:
    raw = await request.read()
    body = decode_body(raw, CreateKeyBody) if raw.strip() else CreateKeyBody()
    raw_key, key = await request.app[ACCOUNTS].create_api_key(
        actor_of(request), label=body.label, expires_at=body.expires_at, kind=body.kind
    )
    return json_response(
        NewKey(
            id=key.key_id,
            raw_key=raw_key,
            label=key.label,
            kind=key.kind,
            prefix=key.prefix,
            expires_at=_iso(key.expires_at),
            created_at=_iso(key.created_at),
        ),
        status=201,
    )


@routes.get("/api/user/apikeys")
@describe("The caller's API keys", replies={200: list[KeyInfo]})
async def list_keys(request: web.Request) -> web.Response:
    accounts = request.app[ACCOUNTS]
    keys = await accounts.list_api_keys(actor_of(request))
    now = accounts.clock()
    return json_response([key_info(key, now) for key in keys])


@routes.delete("/api/user/apikeys/{key_id}")
@describe("Revoke an API key (again: no change)", replies={200: Revoked}, errors=(404,))
async def revoke_key(request: web.Request) -> web.Response:
    key = await request.app[ACCOUNTS].revoke_api_key(
        actor_of(request), request.match_info["key_id"]
    )
    return json_response(Revoked(message="API key revoked successfully", id=key.key_id))
