"""Loopgate's own API, versioned under ``/v1``: sessions, requests, answers.

Beyond the reference's routes, a request here says how it was decided
(``outcome`` and ``decided_by``: its JSON is :func:`loopgate.views.request_json`).
"""

from __future__ import annotations

from aiohttp import web

from loopgate.errors import ValidationFailed
from loopgate.views import request_json, session_json
from loopgate.web.auth import actor_of
from loopgate.web.hitl import create_from_body
from loopgate.web.keys import REQUESTS, SESSIONS
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


@routes.post("/v1/sessions")
async def create_session(request: web.Request) -> web.Response:
    body = await read_body(request, CreateSessionBody)
    session, changed = await request.app[SESSIONS].register_session(
        body.session_id,
        body.client_id,
        body.telegram_id,
        actor_of(request),
        callback_url=body.callback_url,
    )
    return json_response(session_json(session), status=201 if changed else 200)


@routes.get("/v1/sessions/{session_id}")
async def get_session(request: web.Request) -> web.Response:
    session = await request.app[SESSIONS].get_session(
        request.match_info["session_id"], actor_of(request)
    )
    return json_response(session_json(session))


@routes.post("/v1/requests")
async def create_request(request: web.Request) -> web.Response:
    view, created = await create_from_body(request)
    return json_response(request_json(view), status=201 if created else 200)


@routes.get("/v1/requests/{request_id}")
async def get_request(request: web.Request) -> web.Response:
    view = await request.app[REQUESTS].wait_for_decision(
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
    views = await request.app[REQUESTS].list_requests(
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
    view = await request.app[REQUESTS].cancel(
        request.match_info["request_id"], reason, actor_of(request)
    )
    return json_response(request_json(view))


@routes.post("/v1/requests/{request_id}/response")
async def answer_request(request: web.Request) -> web.Response:
    body = await read_body(request, AnswerBody)
    view = await request.app[REQUESTS].answer(
        request.match_info["request_id"],
        option=body.option,
        text=body.text,
        channel="api",
        actor=actor_of(request),
    )
    return json_response(request_json(view))
