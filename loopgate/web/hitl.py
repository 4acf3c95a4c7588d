"""The Go reference's HITL routes, field for field, for its existing clients.

``/hitl/register`` (and ``/sessions/register``), ``/hitl/request``,
``/hitl/poll``, ``/hitl/status``, ``/hitl/deactivate``, ``/hitl/pending`` and
``/hitl/cancel``. Each answers a superset of the Go server's JSON: its keys,
with their JSON types, plus a few of ours. The reply shapes are the structs
below; ``tests/web/test_reference_contract.py`` holds the Go shapes as data
and checks every route against them. Status words are the reference's:
``pending``, ``completed``, ``timeout``, ``canceled`` (one "l");
``completed`` is true for every final state. ``/hitl/poll`` answers at once
unless ``wait=N`` asks for a long-poll, which sleeps on the hub until the
request is decided.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from aiohttp import web

from loopgate.events import RequestType
from loopgate.views import RequestView, SessionView
from loopgate.web.auth import actor_of
from loopgate.web.describe import WAIT, Param, describe
from loopgate.web.keys import RECEIPTS, REQUESTS, SESSIONS
from loopgate.web.params import client_gone, read_body, required, wait_seconds
from loopgate.web.responses import json_response
from loopgate.wire import (
    CreateRequestBody,
    RegisterSessionBody,
    RequestRef,
    SessionRef,
)

routes = web.RouteTableDef()

ReferenceStatus = Literal["pending", "completed", "timeout", "canceled"]
REFERENCE_STATUS: dict[str, ReferenceStatus] = {
    "pending": "pending",
    "delivered": "pending",
    "answered": "completed",
    "expired": "timeout",
    "cancelled": "canceled",
}


class Reply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of the reference's replies: a ``None`` field is left out, as Go's ``omitempty``."""


class Done(Reply, frozen=True, kw_only=True):
    """``POST /hitl/register``, ``/hitl/deactivate`` and ``/hitl/cancel``."""

    success: bool
    message: str
    session_id: str | None = None
    request_id: str | None = None
    status: ReferenceStatus | None = None


class Created(Reply, frozen=True, kw_only=True):
    """``POST /hitl/request``."""

    success: bool
    request_id: str
    status: ReferenceStatus
    created_at: str
    expires_at: str | None = None


class Polled(Reply, frozen=True, kw_only=True):
    """``GET /hitl/poll``: the reference's ``PollResponse``, plus what its README reads."""

    request_id: str
    session_id: str
    status: ReferenceStatus
    completed: bool
    approved: bool
    response: str
    message: str
    options: list[str]
    metadata: dict[str, Any]
    timestamp: str
    receipt: str | None = None
    """Ours: the signed receipt of a request approved with an action (``loopgate/receipts/``)."""


class Session(Reply, frozen=True, kw_only=True):
    """``GET /hitl/status``: the reference's ``Session``, plus how many requests wait on it."""

    id: str
    client_id: str
    # Go's int64: 0 when the session has no Telegram chat.
    telegram_id: int
    active: bool
    created_at: str
    success: bool
    session_id: str
    registered_at: str
    pending_requests: int


class HitlRequest(Reply, frozen=True, kw_only=True):
    """One request in ``GET /hitl/pending``: the reference's ``HITLRequest``."""

    id: str
    session_id: str
    client_id: str
    message: str
    request_type: RequestType
    options: list[str] | None = None
    timeout_seconds: int
    callback_url: str | None = None
    metadata: dict[str, Any] | None = None
    status: ReferenceStatus
    response: str | None = None
    approved: bool
    created_at: str
    responded_at: str | None = None
    expires_at: str | None = None


class Pending(Reply, frozen=True, kw_only=True):
    """``GET /hitl/pending``."""

    pending_requests: list[HitlRequest]
    count: int
    success: bool


def polled(view: RequestView, receipt: str | None = None) -> Polled:
    return Polled(
        request_id=view.request_id,
        session_id=view.session_id,
        status=REFERENCE_STATUS[view.status],
        completed=view.final,
        approved=bool(view.approved),
        response=view.response or "",
        message=view.message,
        options=[option.label for option in view.options],
        metadata=view.metadata,
        timestamp=(view.decided_at or view.created_at).isoformat(),
        receipt=receipt,
    )


def hitl_request(view: RequestView) -> HitlRequest:
    return HitlRequest(
        id=view.request_id,
        session_id=view.session_id,
        client_id=view.client_id,
        message=view.message,
        request_type=view.request_type,
        options=[option.label for option in view.options] or None,
        timeout_seconds=view.timeout_seconds,
        callback_url=view.callback_url,
        metadata=view.metadata or None,
        status=REFERENCE_STATUS[view.status],
        response=view.response,
        approved=bool(view.approved),
        created_at=view.created_at.isoformat(),
        responded_at=view.decided_at.isoformat() if view.decided_at else None,
        expires_at=view.expires_at.isoformat() if view.expires_at else None,
    )


def session_reply(session: SessionView, pending: int) -> Session:
    registered = session.registered_at.isoformat()
    return Session(
        id=session.session_id,
        client_id=session.client_id,
        telegram_id=session.telegram_id or 0,
        active=session.active,
        created_at=registered,
        success=True,
        session_id=session.session_id,
        registered_at=registered,
        pending_requests=pending,
    )


@describe(
    "Register a session (the reference's name; also /sessions/register)",
    body=RegisterSessionBody,
    replies={200: Done},
    errors=(409,),
)
async def register(request: web.Request) -> web.Response:
    body = await read_body(request, RegisterSessionBody)
    session, changed = await request.app[SESSIONS].register_session(
        body.session_id, body.client_id, body.telegram_id, actor_of(request)
    )
    message = "Session registered successfully" if changed else "Session already registered"
    return json_response(Done(success=True, session_id=session.session_id, message=message))


routes.post("/hitl/register")(register)
routes.post("/sessions/register")(register)  # the name the reference's README uses


async def create_from_body(request: web.Request) -> tuple[RequestView, bool]:
    """Create a request from the body of ``/hitl/request`` or ``/v1/requests``."""
    body = await read_body(request, CreateRequestBody)
    return await request.app[REQUESTS].create_from_body(
        body, actor_of(request), request.headers.get("Idempotency-Key") or body.idempotency_key
    )


@routes.post("/hitl/request")
@describe(
    "Ask a human (the reference's shape; /v1/requests answers the full request)",
    body=CreateRequestBody,
    replies={200: Created},
    errors=(404, 409, 422, 429),
)
async def create_request(request: web.Request) -> web.Response:
    view, _ = await create_from_body(request)
    return json_response(
        Created(
            success=True,
            request_id=view.request_id,
            # "pending", unless a policy rule decided it at creation.
            status=REFERENCE_STATUS[view.status],
            created_at=view.created_at.isoformat(),
            expires_at=view.expires_at.isoformat() if view.expires_at else None,
        )
    )


@routes.get("/hitl/poll")
@describe(
    "A request's state; with wait=N, a long-poll until it is decided",
    params=(Param("request_id", "The request to read.", required=True), WAIT),
    replies={200: Polled},
    errors=(404, 429),
)
async def poll(request: web.Request) -> web.Response:
    view = await request.app[REQUESTS].wait_for_decision(
        required(request, "request_id"),
        actor_of(request),
        wait_seconds(request),
        gone=lambda: client_gone(request),
    )
    return json_response(polled(view, await request.app[RECEIPTS].mint(view)))


@routes.get("/hitl/status")
@describe(
    "A session, and how many of its requests wait",
    params=(Param("session_id", "The session to read.", required=True),),
    replies={200: Session},
    errors=(404,),
)
async def session_status(request: web.Request) -> web.Response:
    actor = actor_of(request)
    session = await request.app[SESSIONS].get_session(required(request, "session_id"), actor)
    pending = await request.app[REQUESTS].list_requests(
        actor, statuses=("pending", "delivered"), session_id=session.session_id, limit=1000
    )
    return json_response(session_reply(session, len(pending)))


@routes.post("/hitl/deactivate")
@describe(
    "Deactivate a session: it takes no new requests",
    body=SessionRef,
    replies={200: Done},
    errors=(404, 409),
)
async def deactivate(request: web.Request) -> web.Response:
    body = await read_body(request, SessionRef)
    session = await request.app[SESSIONS].deactivate_session(body.session_id, actor_of(request))
    return json_response(
        Done(
            success=True,
            session_id=session.session_id,
            message="Session deactivated successfully",
        )
    )


@routes.get("/hitl/pending")
@describe("The caller's undecided requests", replies={200: Pending})
async def pending(request: web.Request) -> web.Response:
    views = await request.app[REQUESTS].list_requests(
        actor_of(request), statuses=("pending", "delivered"), limit=1000
    )
    return json_response(
        Pending(pending_requests=[hitl_request(v) for v in views], count=len(views), success=True)
    )


@routes.post("/hitl/cancel")
@describe(
    "Cancel an undecided request",
    body=RequestRef,
    replies={200: Done},
    errors=(404, 409, 410),
)
async def cancel(request: web.Request) -> web.Response:
    body = await read_body(request, RequestRef)
    view = await request.app[REQUESTS].cancel(body.request_id, body.reason, actor_of(request))
    return json_response(
        Done(
            success=True,
            request_id=view.request_id,
            status=REFERENCE_STATUS[view.status],
            message="Request canceled successfully",
        )
    )
