"""Query tables follow the log inside each append; rebuilding them from the log changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from loopgate.config import sqlite_path
from loopgate.domain import request, session
from loopgate.events import (
    Channel,
    Event,
    Meta,
    Option,
    RecordedEvent,
    RequestDelivered,
    RequestExpired,
    ResponseReceived,
    SessionRegistered,
    WebhookDelivered,
)
from loopgate.projections import requests as requests_projection
from loopgate.store import PostgresStore, SqliteStore
from loopgate.store.postgres import numbered

Store = SqliteStore | PostgresStore
Factory = Callable[[], Awaitable[Store]]

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
ALICE = Meta(actor="user-alice", tenant="alice", correlation_id="http-1")
BOB = Meta(actor="apikey:k2", tenant="bob", correlation_id="http-2")
SYSTEM = Meta()
CALLBACK = "https://agent.example/cb"


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- commands, handled the way the web layer will -----------------------------


async def handle(
    store: Store, command: session.Command | request.Command, meta: Meta = ALICE
) -> list[RecordedEvent]:
    """Load the aggregate's stream, decide, append at the version it was read at."""
    if isinstance(command, session.RegisterSession | session.DeactivateSession):
        decider: Any = session
        stream = f"session-{command.session_id}"
    else:
        decider, stream = request, f"request-{command.request_id}"
    history = await store.read_stream(stream)
    decided = decider.decide(command, decider.fold(r.event for r in history))
    return await store.append(stream, history[-1].version if history else 0, decided, meta)


async def append_late(store: Store, request_id: str, event: Event) -> list[RecordedEvent]:
    """Append an event no decider would emit now, at the stream's current version."""
    history = await store.read_stream(f"request-{request_id}")
    return await store.append(f"request-{request_id}", history[-1].version, [event], SYSTEM)


def register(
    sid: str, client: str, telegram_id: int | None = None, now: datetime = T0
) -> session.RegisterSession:
    return session.RegisterSession(
        session_id=sid, client_id=client, telegram_id=telegram_id, now=now
    )


def deactivate(sid: str, now: datetime) -> session.DeactivateSession:
    return session.DeactivateSession(session_id=sid, now=now)


def create(rid: str, **changes: Any) -> request.CreateRequest:
    """A confirmation ``rid`` in session s1, due after 300 s, with ``changes``."""
    defaults: dict[str, Any] = {"session_id": "s1", "client_id": "agent", "message": f"{rid}?"}
    defaults |= {"request_type": "confirmation", "timeout_seconds": 300, "now": T0}
    return request.CreateRequest(request_id=rid, **(defaults | changes))


def deliver(
    rid: str, channel: Channel, external_id: str | None, now: datetime
) -> request.MarkDelivered:
    return request.MarkDelivered(
        request_id=rid, channel=channel, external_message_id=external_id, now=now
    )


def answer(
    rid: str, responder: str, channel: Channel, now: datetime, **choice: str
) -> request.AnswerRequest:
    return request.AnswerRequest(
        request_id=rid, responder=responder, channel=channel, now=now, **choice
    )


async def realistic_day(a: Store, b: Store) -> None:
    """Two server processes (``a`` and ``b``) sharing one database through a day's work."""
    await handle(a, register("s1", "agent", 42))
    await handle(b, register("s1", "agent", 42, at(1)))  # agents re-register on start: a no-op
    await handle(b, register("s2", "bot"), BOB)
    await handle(b, deactivate("s2", at(1)), BOB)
    await handle(a, register("s2", "bot", 7, at(2)), BOB)  # rebinding needs a deactivation
    await handle(a, deactivate("s2", at(3)), BOB)
    await handle(b, register("s3", "cron", now=at(4)))
    await handle(a, deactivate("s3", at(5)))
    await handle(b, register("s3", "cron", now=at(6)))

    # Answered by button after delivery and a reminder; then the webhook reports back.
    await handle(a, create("r-answered", callback_url=CALLBACK))
    await handle(b, deliver("r-answered", "telegram", "100", at(1)))
    await handle(a, request.SendReminder(request_id="r-answered", channel="telegram", now=at(60)))
    await handle(b, answer("r-answered", "telegram:42", "telegram", at(61), option="Approve"))
    webhook = WebhookDelivered(
        request_id="r-answered", url=CALLBACK, status_code=200, attempt=1, delivered_at=at(62)
    )
    await append_late(a, "r-answered", webhook)
    # A free-text answer, with metadata that JSONB reorders and renormalises.
    metadata = {"pr": 42, "ratio": 1.5, "tags": ["ünï", {"k": 1e3}]}
    await handle(b, create("r-text", request_type="input", metadata=metadata), BOB)
    await handle(a, answer("r-text", "user-bob", "console", at(10), text="ship it"), BOB)
    # Cancelled, expired (approving on timeout), and one still waiting.
    options = (Option(label="A"), Option(label="B", approves=False))
    await handle(a, create("r-cancelled", request_type="choice", options=options))
    await handle(b, request.CancelRequest(request_id="r-cancelled", reason="gave up", now=at(20)))
    await handle(b, create("r-expired", timeout_seconds=60, on_timeout="approve"))
    await handle(a, deliver("r-expired", "telegram", "101", at(2)))
    await handle(b, request.ExpireRequest(request_id="r-expired", now=at(61)))
    await handle(a, create("r-pending", timeout_seconds=0, idempotency_key="deploy-7"))
    await handle(b, deliver("r-pending", "console", None, at(3)))


# --- reading the tables -------------------------------------------------------


async def dump(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Both tables in full, in primary-key order."""
    return {
        "sessions": await store.fetch("SELECT * FROM sessions ORDER BY session_id, tenant"),
        "requests": await store.fetch("SELECT * FROM requests ORDER BY request_id"),
    }


def values(row: dict[str, Any], columns: str) -> tuple[Any, ...]:
    """Some columns of a row; timestamps as datetimes (SQLite stores ISO text)."""
    return tuple(
        datetime.fromisoformat(row[c]) if c.endswith("_at") and isinstance(row[c], str) else row[c]
        for c in columns.split()
    )


async def requests_by_id(store: Store) -> dict[str, dict[str, Any]]:
    return {row["request_id"]: row for row in (await dump(store))["requests"]}


# --- live projections ---------------------------------------------------------


async def test_keeps_the_sessions_table_in_step_with_the_log(open_test_store: Factory) -> None:
    a, b = await open_test_store(), await open_test_store()
    await realistic_day(a, b)

    rows = (await dump(b))["sessions"]

    columns = "session_id client_id telegram_id tenant active registered_at deactivated_at version"
    assert [values(row, columns) for row in rows] == [
        ("s1", "agent", 42, "alice", True, T0, None, 1),
        ("s2", "bot", 7, "bob", False, at(2), at(3), 4),
        ("s3", "cron", None, "alice", True, at(6), None, 3),
    ]


async def test_keeps_the_requests_table_in_step_with_the_log(open_test_store: Factory) -> None:
    a, b = await open_test_store(), await open_test_store()
    await realistic_day(a, b)

    rows = (await dump(a))["requests"]

    columns = "request_id status approved response_option response_text responder channel"
    assert [values(row, columns + " decided_at version") for row in rows] == [
        ("r-answered", "answered", True, "Approve", None, "telegram:42", "telegram", at(61), 5),
        ("r-cancelled", "cancelled", None, None, None, "user-alice", None, at(20), 2),
        ("r-expired", "expired", True, None, None, None, "telegram", at(61), 3),
        ("r-pending", "delivered", None, None, None, None, "console", None, 2),
        ("r-text", "answered", True, None, "ship it", "user-bob", "console", at(10), 2),
    ]
    columns = "tenant external_message_id delivered_at expires_at callback_url idempotency_key"
    assert [values(row, columns) for row in rows] == [
        ("alice", "100", at(1), at(300), CALLBACK, None),
        ("alice", None, None, at(300), None, None),
        ("alice", "101", at(2), at(60), None, None),
        ("alice", None, at(3), None, None, "deploy-7"),
        ("bob", None, None, at(300), None, None),
    ]
    answered, text = rows[0], rows[4]
    assert msgspec.json.decode(answered["options"]) == [
        {"label": "Approve", "approves": True},
        {"label": "Reject", "approves": False},
    ]
    assert (text["request_type"], text["allow_text"]) == ("input", True)
    assert msgspec.json.decode(text["metadata"]) == {
        "pr": 42,
        "ratio": 1.5,
        "tags": ["ünï", {"k": 1000}],
    }


async def test_leaves_a_final_request_alone_when_a_late_event_arrives(store: Store) -> None:
    await handle(store, register("s1", "agent"))
    await handle(store, create("r1", timeout_seconds=60))
    await handle(store, answer("r1", "operator", "console", at(5), option="Reject"))
    await handle(store, create("r2"))
    await handle(store, request.CancelRequest(request_id="r2", now=at(6)))
    before = await requests_by_id(store)

    expiry = RequestExpired(request_id="r1", on_timeout="reject", approved=None, expired_at=at(61))
    await append_late(store, "r1", expiry)
    delivery = RequestDelivered(
        request_id="r2", channel="telegram", external_message_id="9", delivered_at=at(7)
    )
    await append_late(store, "r2", delivery)

    after = await requests_by_id(store)
    columns = "status approved decided_at channel external_message_id delivered_at"
    assert values(after["r1"], columns) == values(before["r1"], columns)
    assert values(after["r1"], "status approved") == ("answered", False)
    assert values(after["r2"], columns) == values(before["r2"], columns)
    assert values(after["r2"], "status") == ("cancelled",)


# --- rebuilding ---------------------------------------------------------------


async def test_rebuilds_tables_equal_to_the_live_ones(open_test_store: Factory) -> None:
    a, b = await open_test_store(), await open_test_store()
    await realistic_day(a, b)
    live = await dump(a)
    assert (len(live["sessions"]), len(live["requests"])) == (3, 5)

    replayed = await a.rebuild_projections()

    assert replayed == await a.head()
    assert await dump(a) == live
    assert await dump(b) == live


async def test_rebuilds_from_an_empty_log_to_empty_tables(store: Store) -> None:
    assert await store.rebuild_projections() == 0
    assert await dump(store) == {"sessions": [], "requests": []}


async def test_drops_rows_the_log_does_not_explain_when_rebuilding(
    store: Store, store_url: str
) -> None:
    await handle(store, register("s1", "agent"))
    live = await dump(store)
    await execute_sql(
        store_url,
        "INSERT INTO sessions (session_id, client_id, tenant, active, registered_at, version)"
        " VALUES ('ghost', 'x', 'local', TRUE, '2025-01-01T00:00:00Z', 1)",
    )

    await store.rebuild_projections()

    assert await dump(store) == live


async def test_makes_appends_wait_for_a_rebuild_in_progress(store: Store) -> None:
    def registered(sid: str) -> SessionRegistered:
        return SessionRegistered(session_id=sid, client_id="agent", registered_at=T0)

    for n in range(50):
        await store.append(f"session-s{n}", 0, [registered(f"s{n}")], SYSTEM)

    replayed, *appended = await asyncio.gather(
        store.rebuild_projections(),
        *(store.append(f"session-late{n}", 0, [registered(f"late{n}")], SYSTEM) for n in range(5)),
    )

    assert 50 <= replayed <= 55
    assert [len(records) for records in appended] == [1] * 5
    assert len((await dump(store))["sessions"]) == 55


async def execute_sql(store_url: str, sql: str) -> None:
    """Write to the database behind the store's back."""
    if store_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(sqlite_path(store_url))) as conn, conn:
            conn.execute(sql)
        return
    conn = await asyncpg.connect(store_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_decides_a_request_by_its_primary_key_even_with_a_generic_plan(
    postgres_url: str,
) -> None:
    """The UPDATEs that decide a request must probe the primary key, not the open-requests index.

    A prepared statement switches to a generic plan after a few runs. Written as
    ``status IN ('pending', 'delivered')``, the WHERE clause matched the partial
    index's predicate and that plan scanned every open request per UPDATE: a
    rebuild, where every request is open for a while, slowed down quadratically.
    """
    answer = ResponseReceived(
        request_id="r1", responder="u", option="Yes", approved=True, channel="api", responded_at=T0
    )
    record = RecordedEvent(
        position=2, stream="request-r1", version=2, event=answer, meta=ALICE,
        recorded_at=T0, prev_hash="0" * 64, hash="0" * 64,
    )  # fmt: skip
    (sql, params), *_ = requests_projection.apply(record)
    conn = await asyncpg.connect(postgres_url)
    transaction = conn.transaction()
    await transaction.start()
    try:
        # A table of mostly decided requests, as in any database that has run a while
        # (and in mid-rebuild), makes the open-requests index look cheap to the planner.
        await conn.execute(
            "INSERT INTO requests (request_id, session_id, client_id, tenant, message,"
            " request_type, options, allow_text, metadata, timeout_seconds, on_timeout,"
            " status, created_at, version)"
            " SELECT 'old-' || n, 's1', 'c', 'alice', 'm', 'input', '[]', TRUE, '{}', 60,"
            " 'reject', 'answered', now(), 2 FROM generate_series(1, 5000) AS n"
        )
        await conn.execute("ANALYZE requests")
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        statement = await conn.prepare(f"EXPLAIN {numbered(sql)}")
        plan = "\n".join(row[0] for row in await statement.fetch(*params))
    finally:
        await transaction.rollback()
        await conn.close()
    assert "requests_pkey" in plan, plan
    assert "requests_open_expiry" not in plan, plan
