"""Loopgate's own API, versioned under ``/v1``: sessions, requests, answers.

Beyond the reference's routes, a request here says how it was decided:
``outcome`` (approved, rejected, answered, expired, cancelled) and
``decided_by`` (``{kind: human|policy|agent, id, channel}``), so a timeout is
never mistaken for a human's decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from loopgate.errors import ValidationFailed
from loopgate.service import RequestView, SessionView
from loopgate.web.auth import actor_of
from loopgate.web.hitl import create_from_body
from loopgate.web.keys import SERVICE
from loopgate.web.params import client_gone, decode_cursor, encode_cursor, read_body, wait_seconds
from loopgate.web.responses import json_response
from loopgate.wire import (
    AnswerBody,
    Body,
    CreateSessionBody,
    decode_body,
)

routes = web.RouteTableDef()


class CancelBody(Body, frozen=True, kw_only=True):
    """The optional body of ``POST /v1/requests/{id}/cancel``."""

    reason: str | None = None


STATUSES = ("pending", "delivered", "answered", "cancelled", "expired")
MAX_PAGE = 200


def outcome_of(view: RequestView) -> str | None:
    match view.status:
        case "answered" if view.response_option is None:
            return "answered"
        case "answered":
            return "approved" if view.approved else "rejected"
        case "expired" | "cancelled":
            return view.status
        case _:
            return None


def decided_by(view: RequestView) -> dict[str, Any] | None:
    match view.status:
        case "answered":
            return {"kind": "human", "id": view.responder, "channel": view.channel}
        case "expired":
            return {"kind": "policy", "id": f"on_timeout:{view.on_timeout}", "channel": "system"}
        case "cancelled":
            return {"kind": "agent", "id": view.responder, "channel": "api"}
        case _:
            return None


def request_json(view: RequestView) -> dict[str, Any]:
    return {
        "request_id": view.request_id,
        "session_id": view.session_id,
        "client_id": view.client_id,
        "message": view.message,
        "request_type": view.request_type,
        "options": [{"label": o.label, "approves": o.approves} for o in view.options],
        "allow_text": view.allow_text,
        "metadata": view.metadata,
        "timeout_seconds": view.timeout_seconds,
        "on_timeout": view.on_timeout,
        "callback_url": view.callback_url,
        "status": view.status,
        "completed": view.final,
        "approved": view.approved,
        "response": view.response,
        "outcome": outcome_of(view),
        "decided_by": decided_by(view),
        "created_at": _iso(view.created_at),
        "expires_at": _iso(view.expires_at),
        "delivered_at": _iso(view.delivered_at),
        "decided_at": _iso(view.decided_at),
    }


def session_json(view: SessionView) -> dict[str, Any]:
    return {
        "session_id": view.session_id,
        "client_id": view.client_id,
        "telegram_id": view.telegram_id,
        "callback_url": view.callback_url,
        "active": view.active,
        "registered_at": _iso(view.registered_at),
        "deactivated_at": _iso(view.deactivated_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@routes.post("/v1/sessions")
async def create_session(request: web.Request) -> web.Response:
    body = await read_body(request, CreateSessionBody)
    session, changed = await request.app[SERVICE].register_session(
        body.session_id,
        body.client_id,
        body.telegram_id,
        actor_of(request),
        callback_url=body.callback_url,
    )
    return json_response(session_json(session), status=201 if changed else 200)


@routes.get("/v1/sessions/{session_id}")
async def get_session(request: web.Request) -> web.Response:
    session = await request.app[SERVICE].get_session(
        request.match_info["session_id"], actor_of(request)
    )
    return json_response(session_json(session))


@routes.post("/v1/requests")
async def create_request(request: web.Request) -> web.Response:
    view, created = await create_from_body(request)
    return json_response(request_json(view), status=201 if created else 200)


@routes.get("/v1/requests/{request_id}")
async def get_request(request: web.Request) -> web.Response:
    view = await request.app[SERVICE].wait_for_decision(
        request.match_info["request_id"],
        actor_of(request),
        wait_seconds(request),
        gone=lambda: client_gone(request),
    )
    return json_response(request_json(view))


@routes.get("/v1/requests")
async def list_requests(request: web.Request) -> web.Response:
    statuses = [s for s in request.query.get("status", "").split(",") if s]
    unknown = sorted(set(statuses) - set(STATUSES))
    if unknown:
        raise ValidationFailed(f"status: unknown {unknown}; use any of {list(STATUSES)}")
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"limit: expected an integer from 1 to {MAX_PAGE}")
    cursor = request.query.get("cursor")
    views = await request.app[SERVICE].list_requests(
        actor_of(request),
        statuses=statuses,
        session_id=request.query.get("session_id") or None,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )
    next_cursor = encode_cursor(views[-1]) if len(views) == limit else None
    return json_response({"requests": [request_json(v) for v in views], "next_cursor": next_cursor})


@routes.post("/v1/requests/{request_id}/cancel")
async def cancel_request(request: web.Request) -> web.Response:
    raw = await request.read()
    reason = decode_body(raw, CancelBody).reason if raw.strip() else None
    view = await request.app[SERVICE].cancel(
        request.match_info["request_id"], reason, actor_of(request)
    )
    return json_response(request_json(view))


@routes.post("/v1/requests/{request_id}/response")
async def answer_request(request: web.Request) -> web.Response:
    body = await read_body(request, AnswerBody)
    view = await request.app[SERVICE].answer(
        request.match_info["request_id"],
        option=body.option,
        text=body.text,
        channel="api",
        actor=actor_of(request),
    )
    return json_response(request_json(view))
