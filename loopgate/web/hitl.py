"""The Go reference's HITL routes, field for field, for its existing clients.

``/hitl/register`` (and ``/sessions/register``), ``/hitl/request``,
``/hitl/poll``, ``/hitl/status``, ``/hitl/deactivate``, ``/hitl/pending`` and
``/hitl/cancel``. Status words are the reference's: ``pending``,
``completed``, ``timeout``, ``canceled`` (one "l"); ``completed`` is true for
every final state. ``/hitl/poll`` answers at once unless ``wait=N`` asks for a
long-poll, which sleeps on the hub until the request is decided.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from loopgate.views import RequestView
from loopgate.web.auth import actor_of
from loopgate.web.keys import REQUESTS, SESSIONS
from loopgate.web.params import client_gone, read_body, required, wait_seconds
from loopgate.web.responses import json_response
from loopgate.wire import (
    CreateRequestBody,
    RegisterSessionBody,
    RequestRef,
    SessionRef,
)

routes = web.RouteTableDef()

REFERENCE_STATUS = {
    "pending": "pending",
    "delivered": "pending",
    "answered": "completed",
    "expired": "timeout",
    "cancelled": "canceled",
}


def poll_shape(view: RequestView) -> dict[str, Any]:
    """What ``/hitl/poll`` answers; the reference's fields plus a few extras its README reads."""
    return {
        "request_id": view.request_id,
        "session_id": view.session_id,
        "status": REFERENCE_STATUS[view.status],
        "completed": view.final,
        "approved": bool(view.approved),
        "response": view.response or "",
        "message": view.message,
        "options": [option.label for option in view.options],
        "metadata": view.metadata,
        "timestamp": (view.decided_at or view.created_at).isoformat(),
    }


async def register(request: web.Request) -> web.Response:
    body = await read_body(request, RegisterSessionBody)
    session, changed = await request.app[SESSIONS].register_session(
        body.session_id, body.client_id, body.telegram_id, actor_of(request)
    )
    return json_response(
        {
            "success": True,
            "session_id": session.session_id,
            "message": "Session registered successfully"
            if changed
            else "Session already registered",
        }
    )


routes.post("/hitl/register")(register)
routes.post("/sessions/register")(register)  # the name the reference's README uses


async def create_from_body(request: web.Request) -> tuple[RequestView, bool]:
    """Create a request from the body of ``/hitl/request`` or ``/v1/requests``."""
    body = await read_body(request, CreateRequestBody)
    return await request.app[REQUESTS].create_from_body(
        body, actor_of(request), request.headers.get("Idempotency-Key") or body.idempotency_key
    )


@routes.post("/hitl/request")
async def create_request(request: web.Request) -> web.Response:
    view, _ = await create_from_body(request)
    return json_response(
        {
            "success": True,
            "request_id": view.request_id,
            "status": "pending",
            "created_at": view.created_at.isoformat(),
            "expires_at": view.expires_at.isoformat() if view.expires_at else None,
        }
    )


@routes.get("/hitl/poll")
async def poll(request: web.Request) -> web.Response:
    view = await request.app[REQUESTS].wait_for_decision(
        required(request, "request_id"),
        actor_of(request),
        wait_seconds(request),
        gone=lambda: client_gone(request),
    )
    return json_response(poll_shape(view))


@routes.get("/hitl/status")
async def session_status(request: web.Request) -> web.Response:
    actor = actor_of(request)
    session = await request.app[SESSIONS].get_session(required(request, "session_id"), actor)
    pending = await request.app[REQUESTS].list_requests(
        actor, statuses=("pending", "delivered"), session_id=session.session_id, limit=1000
    )
    return json_response(
        {
            "success": True,
            "session_id": session.session_id,
            "client_id": session.client_id,
            "telegram_id": session.telegram_id,
            "active": session.active,
            "registered_at": session.registered_at.isoformat(),
            "pending_requests": len(pending),
        }
    )


@routes.post("/hitl/deactivate")
async def deactivate(request: web.Request) -> web.Response:
    body = await read_body(request, SessionRef)
    session = await request.app[SESSIONS].deactivate_session(body.session_id, actor_of(request))
    return json_response(
        {"success": True, "session_id": session.session_id, "message": "Session deactivated"}
    )


@routes.get("/hitl/pending")
async def pending(request: web.Request) -> web.Response:
    views = await request.app[REQUESTS].list_requests(
        actor_of(request), statuses=("pending", "delivered"), limit=1000
    )
    return json_response(
        {"success": True, "count": len(views), "requests": [poll_shape(v) for v in views]}
    )


@routes.post("/hitl/cancel")
async def cancel(request: web.Request) -> web.Response:
    body = await read_body(request, RequestRef)
    view = await request.app[REQUESTS].cancel(body.request_id, body.reason, actor_of(request))
    return json_response(
        {"success": True, "request_id": view.request_id, "status": REFERENCE_STATUS[view.status]}
    )
