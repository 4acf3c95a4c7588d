"""Server-sent event streams of the log: one request, one session, or a whole tenant.

``GET /v1/requests/{id}/events``, ``GET /v1/sessions/{id}/events`` and
``GET /v1/events`` (``?types=request.created,...``). Each message has ``id:``
the event's global position, ``event:`` its type and ``data:`` a JSON object
``{position, type, stream, recorded_at, data, actor}``. Only ``session.*`` and
``request.*`` events of the caller's tenant are sent: account events carry
password and key hashes and never appear here. Whatever is sent has its
secret fields redacted all the same (``events.event_data``). On a request's
own stream, the ``request.response_received`` of an approval with an action
also carries ``receipt``, the decision's signed receipt (``loopgate/receipts/``).

Resuming: ``Last-Event-ID`` (or ``?after=N``) replays from the log everything
after that position, then the stream goes live. The hub subscription is taken
*before* the replay and the replay reads up to the log's head at that moment,
so the live part starts exactly where the replay ends: no gap, no duplicate.
Without a position, a request or session stream starts with its whole history
and ``/v1/events`` with what is committed from now on.

A heartbeat comment (``: ping``) goes out every ``stream.heartbeat_seconds``.
aiohttp does not cancel a handler when its client hangs up, so the handler
checks the connection whenever it has been idle for a heartbeat and stops
when a write fails: the subscription is released within one heartbeat.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from loopgate.commands.base import Actor
from loopgate.commands.sessions import read_session
from loopgate.errors import ValidationFailed
from loopgate.events import EVENT_TYPES, RecordedEvent, RequestCreated, ResponseReceived, event_data
from loopgate.store.base import EventStore
from loopgate.web.auth import actor_of
from loopgate.web.describe import Media, Param, describe
from loopgate.web.keys import CONFIG, HUB, RECEIPTS, REQUESTS, SESSIONS, STORE
from loopgate.web.params import client_gone

routes = web.RouteTableDef()

STREAMED_TYPES = frozenset(t for t in EVENT_TYPES if t.startswith(("session.", "request.")))
"""What the streams may show; account events (hashes, login failures) never."""
REPLAY_PAGE = 500
SSE = Media(
    ("text/event-stream",),
    "Server-sent events: id is the global position, event the type, data a JSON object "
    "{position, type, stream, recorded_at, data, actor}; ': ping' comments as heartbeats.",
)
RESUME = (
    Param(
        "Last-Event-ID",
        "Resume after this position (what the last message's id said).",
        {"type": "integer", "minimum": 0},
        location="header",
    ),
    Param(
        "after",
        "Resume after this position, for clients that cannot set headers.",
        {"type": "integer", "minimum": 0},
    ),
)

_encoder = msgspec.json.Encoder()
Match = Callable[[RecordedEvent], bool]


def message_data(record: RecordedEvent, receipt: str | None = None) -> str:
    """The ``data:`` line of an event's SSE message (with ``receipt`` when there is one)."""
    message: dict[str, Any] = {
        "position": record.position,
        "type": record.type,
        "stream": record.stream,
        "recorded_at": record.recorded_at.isoformat(),
        "data": event_data(record.event),
        "actor": record.meta.actor,
    }
    if receipt is not None:
        message["receipt"] = receipt
    return _encoder.encode(message).decode()


def resume_position(request: web.Request) -> int | None:
    """``Last-Event-ID``, else ``?after=``: the last position the client has; None if neither."""
    raw = request.headers.get("Last-Event-ID", "").strip()
    name = "Last-Event-ID"
    if not raw:
        raw, name = request.query.get("after", "").strip(), "after"
    if not raw:
        return None
    if not raw.isdigit():
        raise ValidationFailed(f"{name}: expected an event position (an integer >= 0), got {raw!r}")
    return int(raw)


def _visible(actor: Actor) -> Match:
    return lambda r: r.type in STREAMED_TYPES and r.meta.tenant == actor.tenant


async def _log_between(store: EventStore, after: int, upto: int) -> AsyncIterator[RecordedEvent]:
    while after < upto:
        records = await store.read_all(after, REPLAY_PAGE)
        if not records:
            return
        for record in records:
            if record.position > upto:
                return
            yield record
        after = records[-1].position


async def _streams_between(
    store: EventStore, streams: list[str], after: int, upto: int
) -> AsyncIterator[RecordedEvent]:
    records = [r for stream in streams for r in await store.read_stream(stream)]
    for record in sorted(records, key=lambda r: r.position):
        if after < record.position <= upto:
            yield record


@routes.get("/v1/requests/{request_id}/events")
@describe(
    "A request's events, replayed then live", params=RESUME, replies={200: SSE}, errors=(404, 429)
)
async def request_events(request: web.Request) -> web.StreamResponse:
    actor, request_id = actor_of(request), request.match_info["request_id"]
    await request.app[REQUESTS].get_request(request_id, actor)  # 404 before the stream starts
    stream = f"request-{request_id}"
    visible = _visible(actor)
    after = resume_position(request) or 0

    def replay(store: EventStore, since: int, upto: int) -> AsyncIterator[RecordedEvent]:
        return _streams_between(store, [stream], after, upto)

    requests, receipts = request.app[REQUESTS], request.app[RECEIPTS]

    async def receipt_of(record: RecordedEvent) -> str | None:
        if not isinstance(record.event, ResponseReceived):
            return None
        # The projection row committed with the event, so it holds the decision.
        return await receipts.mint(await requests.get_request(request_id, actor))

    return await _serve(
        request,
        replay,
        lambda r: r.stream == stream and visible(r),
        stream=stream,
        receipt_of=receipt_of,
    )


@routes.get("/v1/sessions/{session_id}/events")
@describe(
    "A session's events and its requests', replayed then live",
    params=RESUME,
    replies={200: SSE},
    errors=(404, 429),
)
async def session_events(request: web.Request) -> web.StreamResponse:
    actor, session_id = actor_of(request), request.match_info["session_id"]
    await request.app[SESSIONS].get_session(session_id, actor)  # 404 before the stream starts
    session_stream, _ = await read_session(request.app[STORE], actor.tenant, session_id)
    visible = _visible(actor)
    after = resume_position(request) or 0
    requests: set[str] = set()  # the session's requests, joined by those created live

    async def replay(store: EventStore, since: int, upto: int) -> AsyncIterator[RecordedEvent]:
        rows = await store.fetch(
            "SELECT request_id FROM requests WHERE session_id = ? AND tenant = ?",
            (session_id, actor.tenant),
        )
        requests.update(row["request_id"] for row in rows)
        streams = [session_stream, *(f"request-{r}" for r in sorted(requests))]
        async for record in _streams_between(store, streams, after, upto):
            yield record

    def match(record: RecordedEvent) -> bool:
        if not visible(record):
            return False
        event = record.event
        if isinstance(event, RequestCreated) and event.session_id == session_id:
            requests.add(event.request_id)
        if record.stream == session_stream:
            return True
        return record.stream.startswith("request-") and record.stream[8:] in requests

    return await _serve(request, replay, match, tenant=actor.tenant)


@routes.get("/v1/events")
@describe(
    "The tenant's session and request events; live only unless a position is given",
    params=(
        *RESUME,
        Param("types", "Comma-separated event types to keep (request.created, ...)."),
    ),
    replies={200: SSE},
    errors=(429,),
)
async def tenant_events(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    types = {t for t in request.query.get("types", "").split(",") if t.strip()}
    unknown = sorted(types - STREAMED_TYPES)
    if unknown:
        raise ValidationFailed(f"types: unknown {unknown}; use any of {sorted(STREAMED_TYPES)}")
    visible = _visible(actor)
    after = resume_position(request)

    def match(record: RecordedEvent) -> bool:
        return visible(record) and (not types or record.type in types)

    def replay(store: EventStore, since: int, upto: int) -> AsyncIterator[RecordedEvent]:
        # Without a position the stream is live only: the replay just bridges
        # the moment between subscribing (``since``) and reading the head.
        return _log_between(store, after if after is not None else since, upto)

    return await _serve(request, replay, match, tenant=actor.tenant)


ReceiptOf = Callable[[RecordedEvent], Awaitable[str | None]]
Replay = Callable[[EventStore, int, int], AsyncIterator[RecordedEvent]]
"""``replay(store, since, upto)``: the stream's history up to ``upto``; ``since`` is where
the hub subscription starts."""


async def _serve(
    request: web.Request,
    replay: Replay,
    match: Match,
    *,
    stream: str | None = None,
    tenant: str | None = None,
    receipt_of: ReceiptOf | None = None,
) -> web.StreamResponse:
    """Subscribe, replay the log up to its head, then stream live events until the client goes.

    ``stream``/``tenant`` narrow what the hub pushes to this subscription;
    ``receipt_of`` gives the receipt a message carries, if any.
    """

    async def send(record: RecordedEvent) -> None:
        receipt = await receipt_of(record) if receipt_of is not None else None
        await response.send(
            message_data(record, receipt), id=str(record.position), event=record.type
        )

    hub, store = request.app[HUB], request.app[STORE]
    heartbeat = float(request.app[CONFIG].stream.heartbeat_seconds)
    response = EventSourceResponse(ping_interval=heartbeat)
    with (
        hub.park(actor_of(request).tenant),
        hub.subscribe(stream=stream, tenant=tenant) as subscription,
    ):
        since = subscription.position
        # Subscribed first: every event after ``subscription.position`` reaches the
        # queue. The replay covers the log up to ``upto`` >= that position, so live
        # events at or below ``upto`` were either replayed or not ours.
        upto = max(await store.head(), subscription.position)
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError, RuntimeError, TimeoutError):
            async for record in replay(store, since, upto):
                if match(record):
                    await send(record)
            last = max(upto, resume_position(request) or 0)
            while not client_gone(request) and response.is_connected():
                try:
                    live = await subscription.next(wait_seconds=heartbeat)
                except StopAsyncIteration:
                    break  # the server is shutting down
                if live is not None and live.position > last and match(live):
                    await send(live)
        response.stop_streaming()
        with contextlib.suppress(Exception):
            await response.wait()
    return response
