"""Loopgate's own API, versioned under ``/v1``: sessions, requests, answers.

Beyond the reference's routes, a request here says how it was decided
(``outcome`` and ``decided_by``: its JSON is :class:`loopgate.views.PublicRequest`).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from loopgate.errors import ValidationFailed
from loopgate.views import (
    PublicRequest,
    PublicSession,
    RoutedMember,
    RoutedRequest,
    public_request,
    public_session,
)
from loopgate.web.auth import actor_of
from loopgate.web.describe import WAIT, Param, describe
from loopgate.web.hitl import create_from_body
from loopgate.web.keys import RECEIPTS, REQUESTS, SESSIONS, TEAMS
from loopgate.web.params import client_gone, decode_cursor, encode_cursor, read_body, wait_seconds
from loopgate.web.responses import json_response
from loopgate.wire import (
    AnswerBody,
    Body,
    CreateRequestBody,
    CreateSessionBody,
    decode_body,
)

routes = web.RouteTableDef()


class CancelBody(Body, frozen=True, kw_only=True):
    """The optional body of ``POST /v1/requests/{id}/cancel``."""

    reason: str | None = None


class RequestPage(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/requests``: newest first; ``next_cursor`` is null on the last page."""

    requests: list[PublicRequest]
    next_cursor: str | None


STATUSES = ("pending", "delivered", "answered", "cancelled", "expired")
MAX_PAGE = 200
LIST_PARAMS = (
    Param(
        "status",
        f"Comma-separated statuses to keep, any of {', '.join(STATUSES)}.",
        {"type": "string", "pattern": f"^(({'|'.join(STATUSES)})(,|$))*$"},
    ),
    Param("session_id", "Only this session's requests."),
    Param("limit", "Page size.", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
    Param("cursor", "The next_cursor of the previous page."),
)


@routes.post("/v1/sessions")
@describe(
    "Register a session (201), or find it registered already (200)",
    body=CreateSessionBody,
    replies={200: PublicSession, 201: PublicSession},
    errors=(409, 422),
)
async def create_session(request: web.Request) -> web.Response:
    body = await read_body(request, CreateSessionBody)
    session, changed = await request.app[SESSIONS].register_session(
        body.session_id,
        body.client_id,
        body.telegram_id,
        actor_of(request),
        callback_url=body.callback_url,
    )
    return json_response(public_session(session), status=201 if changed else 200)


@routes.get("/v1/sessions/{session_id}")
@describe("A session", replies={200: PublicSession}, errors=(404,))
async def get_session(request: web.Request) -> web.Response:
    session = await request.app[SESSIONS].get_session(
        request.match_info["session_id"], actor_of(request)
    )
    return json_response(public_session(session))


@routes.post("/v1/requests")
@describe(
    "Ask a human (201); the same Idempotency-Key and body again answer the same request (200)",
    params=(Param("Idempotency-Key", "Beats the body's idempotency_key.", location="header"),),
    body=CreateRequestBody,
    replies={200: PublicRequest, 201: PublicRequest},
    errors=(404, 409, 422, 429),
)
async def create_request(request: web.Request) -> web.Response:
    view, created = await create_from_body(request)
    # A grant or a rule may approve it at creation: then it carries its receipt at once.
    receipt = await request.app[RECEIPTS].mint(view)
    return json_response(public_request(view, receipt=receipt), status=201 if created else 200)


@routes.get("/v1/requests/{request_id}")
@describe(
    "A request; with wait=N, a long-poll until it is decided",
    params=(WAIT,),
    replies={200: RoutedRequest},
    errors=(404, 429),
)
async def get_request(request: web.Request) -> web.Response:
    requests = request.app[REQUESTS]
    view = await requests.wait_for_decision(
        request.match_info["request_id"],
        actor_of(request),
        wait_seconds(request),
        gone=lambda: client_gone(request),
    )
    approvers = await requests.approvers_of(view)
    members = await request.app[TEAMS].resolve(view.tenant, approvers)
    receipt = await request.app[RECEIPTS].mint(view)
    fields = msgspec.structs.asdict(public_request(view, receipt=receipt))
    fields["approvers"] = list(approvers)
    routed = [RoutedMember(user_id=m.user_id, username=m.username, role=m.role) for m in members]
    return json_response(RoutedRequest(**fields, routed_to=routed))


@routes.get("/v1/requests")
@describe("The caller's requests, a page at a time", params=LIST_PARAMS, replies={200: RequestPage})
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
    return json_response(
        RequestPage(requests=[public_request(v) for v in views], next_cursor=next_cursor)
    )


@routes.post("/v1/requests/{request_id}/cancel")
@describe(
    "Cancel an undecided request",
    body=CancelBody,
    body_required=False,
    replies={200: PublicRequest},
    errors=(404, 409, 410),
)
async def cancel_request(request: web.Request) -> web.Response:
    raw = await request.read()
    reason = decode_body(raw, CancelBody).reason if raw.strip() else None
    view = await request.app[REQUESTS].cancel(
        request.match_info["request_id"], reason, actor_of(request)
    )
    return json_response(public_request(view))


@routes.post("/v1/requests/{request_id}/response")
@describe(
    "Answer a request, as an operator (a login token, an operator key, or the open mode)",
    body=AnswerBody,
    replies={200: PublicRequest},
    errors=(403, 404, 409, 410, 422, 429),
)
async def answer_request(request: web.Request) -> web.Response:
    body = await read_body(request, AnswerBody)
    view = await request.app[REQUESTS].answer(
        request.match_info["request_id"],
        option=body.option,
        text=body.text,
        channel="api",
        actor=actor_of(request),
        args=body.args,
        grant=None if body.grant is None else body.grant.to_ask(),
    )
    return json_response(public_request(view))
