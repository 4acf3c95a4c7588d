"""The event store contract, written once and run against SQLite and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
import pytest

from loopgate.config import sqlite_path
from loopgate.errors import ConcurrencyError, CorruptEvent
from loopgate.events import Meta, RecordedEvent, RequestCreated, SessionRegistered
from loopgate.store import PostgresStore, SqliteStore
from loopgate.store.codec import GENESIS_HASH, row_hash
from loopgate.store.postgres import LISTENER_NAME

Store = SqliteStore | PostgresStore
Factory = Callable[[], Awaitable[Store]]

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
META = Meta(actor="user-1", tenant="tenant-1", correlation_id="http-1", causation_id="cmd-1")
TIMEOUT = 30.0
REQUEST = RequestCreated(
    request_id="r1",
    session_id="s1",
    client_id="agent",
    message="Deploy v2?",
    request_type="input",
    timeout_seconds=0,
    created_at=T0,
)


def registered(session_id: str = "s1", client_id: str = "agent") -> SessionRegistered:
    return SessionRegistered(session_id=session_id, client_id=client_id, registered_at=T0)


def created(**changes: Any) -> RequestCreated:
    """Request r1 of session s1, with ``changes``."""
    return msgspec.structs.replace(REQUEST, **changes)


def positions(records: Sequence[RecordedEvent]) -> list[int]:
    return [r.position for r in records]


async def fill(store: Store, count: int) -> None:
    """``count`` one-event streams, appended one after the other."""
    for n in range(count):
        await store.append(f"session-fill{n}", 0, [registered(f"fill{n}")], META)


async def take(store: Store, count: int, after: int = 0) -> list[RecordedEvent]:
    """The first ``count`` events a subscription yields."""
    got: list[RecordedEvent] = []
    async with contextlib.aclosing(store.subscribe(after)) as events:
        async for record in events:
            got.append(record)
            if len(got) == count:
                break
    return got


def settle(outcomes: Sequence[Any]) -> tuple[list[Any], list[BaseException]]:
    """Split ``gather(..., return_exceptions=True)`` results into winners and losers."""
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    return winners, [o for o in outcomes if isinstance(o, BaseException)]


def subscriber(store: Store, count: int, after: int = 0) -> asyncio.Task[list[RecordedEvent]]:
    return asyncio.create_task(take(store, count, after))


async def started(task: asyncio.Task[Any]) -> None:
    """Give a just-created subscriber time to read the log and start waiting."""
    await asyncio.sleep(0.1)
    assert not task.done()


async def execute_sql(store_url: str, sql: str) -> list[Any]:
    """Run SQL on the store's database behind its back, as an intruder or a DBA would."""
    if store_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(sqlite_path(store_url))) as conn, conn:
            return conn.execute(sql).fetchall()
    conn = await asyncpg.connect(store_url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


# --- appending and versions ---------------------------------------------------


async def test_appends_to_a_new_stream_at_expected_version_zero(store: Store) -> None:
    [record] = await store.append("session-s1", 0, [registered()], META)

    assert (record.position, record.stream, record.version) == (1, "session-s1", 1)
    assert record.event == registered()
    assert record.type == "session.registered"


async def test_refuses_append_when_expected_version_is_stale(store: Store) -> None:
    await store.append("session-s1", 0, [registered()], META)

    with pytest.raises(ConcurrencyError) as caught:
        await store.append("session-s1", 0, [registered(client_id="other")], META)

    assert (caught.value.stream, caught.value.expected, caught.value.actual) == ("session-s1", 0, 1)
    assert [r.event for r in await store.read_stream("session-s1")] == [registered()]


async def test_refuses_append_to_a_new_stream_that_expects_a_version(store: Store) -> None:
    with pytest.raises(ConcurrencyError):
        await store.append("session-s1", 3, [registered()], META)
    assert await store.head() == 0


async def test_appends_whatever_the_version_when_expected_version_is_none(store: Store) -> None:
    await store.append("session-s1", None, [registered()], META)
    [record] = await store.append("session-s1", None, [registered(client_id="b")], META)
    assert record.version == 2


async def test_increments_versions_per_stream_and_positions_globally(store: Store) -> None:
    await store.append("session-a", 0, [registered("a")], META)
    await store.append("session-b", 0, [registered("b")], META)
    [record] = await store.append("session-a", 1, [registered("a", "again")], META)

    assert (record.position, record.version) == (3, 2)
    assert [(r.stream, r.version) for r in await store.read_all()] == [
        ("session-a", 1),
        ("session-b", 1),
        ("session-a", 2),
    ]


async def test_gives_several_events_of_one_append_consecutive_positions(store: Store) -> None:
    await store.append("session-x", 0, [registered("x")], META)
    events = [registered("s1", f"client-{n}") for n in range(3)]

    records = await store.append("session-s1", 0, events, META)

    assert [(r.position, r.version) for r in records] == [(2, 1), (3, 2), (4, 3)]
    assert [r.event for r in await store.read_stream("session-s1")] == events


async def test_returns_nothing_and_writes_nothing_for_an_empty_append(store: Store) -> None:
    assert await store.append("session-s1", 0, [], META) == []
    assert await store.head() == 0


async def test_keeps_positions_gap_free_after_a_conflicting_append(store: Store) -> None:
    await store.append("session-s1", 0, [registered()], META)
    with pytest.raises(ConcurrencyError):
        await store.append("session-s1", 0, [registered()], META)
    await store.append("session-s2", 0, [registered("s2")], META)

    assert positions(await store.read_all()) == [1, 2]
    assert await store.head() == 2


@pytest.mark.parametrize("existing", [0, 1], ids=["new stream", "existing stream"])
async def test_lets_exactly_one_of_fifty_racing_appends_win(store: Store, existing: int) -> None:
    if existing:
        await store.append("session-s1", 0, [registered()], META)
    racers = [registered(client_id=f"racer-{n}") for n in range(50)]

    outcomes = await asyncio.gather(
        *(store.append("session-s1", existing, [e], META) for e in racers),
        return_exceptions=True,
    )

    winners, losers = settle(outcomes)
    assert (len(winners), len(losers)) == (1, 49)
    assert {type(e) for e in losers} == {ConcurrencyError}
    [[won]] = winners
    assert [r.event for r in await store.read_stream("session-s1")][existing:] == [won.event]
    assert positions(await store.read_all()) == list(range(1, existing + 2))


async def test_lets_one_append_win_when_two_store_instances_race(open_test_store: Factory) -> None:
    stores = await open_test_store(), await open_test_store()

    winners, losers = settle(
        await asyncio.gather(
            *(stores[n % 2].append("session-s1", 0, [registered()], META) for n in range(50)),
            return_exceptions=True,
        )
    )

    assert (len(winners), {type(e) for e in losers}) == (1, {ConcurrencyError})
    assert len(await stores[0].read_stream("session-s1")) == 1


async def test_refuses_an_append_that_breaks_a_projection_and_commits_the_rest_of_its_batch(
    store: Store,
) -> None:
    # Two streams claiming one request id: the requests table refuses the second.
    await store.append("request-r1", 0, [created()], META)
    outcomes = await asyncio.gather(
        store.append("session-s1", 0, [registered()], META),
        store.append("request-imposter", 0, [created(message="Me too?")], META),
        store.append("session-s2", 0, [registered("s2")], META),
        return_exceptions=True,
    )

    assert isinstance(outcomes[1], ConcurrencyError)
    assert [r.stream for r in await store.read_all()] == ["request-r1", "session-s1", "session-s2"]


# --- reading ------------------------------------------------------------------


async def test_reads_an_unknown_stream_as_empty(store: Store) -> None:
    assert await store.read_stream("session-nobody") == []


async def test_reads_a_stream_in_version_order_without_other_streams(store: Store) -> None:
    for n in range(3):
        await store.append("session-a", n, [registered("a", f"a{n}")], META)
        await store.append("session-b", n, [registered("b", f"b{n}")], META)

    records = await store.read_stream("session-a")

    assert [r.version for r in records] == [1, 2, 3]
    assert [r.event.client_id for r in records] == ["a0", "a1", "a2"]  # type: ignore[attr-defined]


async def test_pages_through_the_log_with_after_and_limit(store: Store) -> None:
    await fill(store, 7)

    assert positions(await store.read_all(0, 3)) == [1, 2, 3]
    assert positions(await store.read_all(3, 3)) == [4, 5, 6]
    assert positions(await store.read_all(6, 3)) == [7]
    assert await store.read_all(7, 3) == []
    assert positions(await store.read_all()) == list(range(1, 8))


async def test_round_trips_meta(store: Store) -> None:
    await store.append("session-s1", 0, [registered()], META)
    await store.append("session-s2", 0, [registered("s2")], Meta())

    assert [r.meta for r in await store.read_all()] == [META, Meta()]
    assert (await store.read_stream("session-s1"))[0].meta == META


async def test_reports_the_head_of_the_log(store: Store) -> None:
    assert await store.head() == 0
    await store.append("session-s1", 0, [registered(client_id=str(n)) for n in range(4)], META)
    assert await store.head() == 4


async def test_answers_a_ping(store: Store) -> None:
    await store.ping()


# --- the hash chain -----------------------------------------------------------


async def test_chains_every_stored_row_to_the_previous_one(store: Store) -> None:
    nested = {"list": [1, 2.5, {"deep": 3.0}], "text": "Déployer v2 ? 🚀 日本語", "none": None}
    numbers = {"big": 1e20, "huge": 1e23, "half": 1.5, "whole": 2.0, "tiny": 1e-7, "neg0": -0.0}
    awkward = created(metadata={**numbers, "nested": nested, "ünïcødé key": True})
    await store.append("request-r1", 0, [awkward], META)
    await asyncio.gather(
        *(store.append(f"session-{n}", 0, [registered(str(n))] * 2, META) for n in range(5))
    )

    rows = await store.read_rows()

    assert len(rows) == 11
    assert rows[0].prev_hash == GENESIS_HASH
    for previous, row in itertools.pairwise(rows):
        assert row.prev_hash == previous.hash
    for row in rows:
        assert row_hash(row) == row.hash, f"hash of position {row.position} does not verify"
    # JSONB may hand numbers back as another type (1e20 as an int); the rest is exact.
    [stored] = await store.read_stream("request-r1")
    assert isinstance(stored.event, RequestCreated)
    assert msgspec.structs.replace(stored.event, metadata={}) == created()
    assert stored.event.metadata["nested"] == nested


# --- corrupt events -----------------------------------------------------------

CORRUPTIONS = {
    "unknown type": "type = 'no.such'",
    "missing fields": """data = '{"type":"session.registered"}'""",
    "bad meta": """meta = '{"actor": 42}'""",
}


@pytest.fixture(params=list(CORRUPTIONS))
async def corrupted(request: pytest.FixtureRequest, store: Store, store_url: str) -> Store:
    """A log of three events whose second one no longer decodes."""
    await fill(store, 3)
    await execute_sql(
        store_url, f"UPDATE events SET {CORRUPTIONS[request.param]} WHERE position = 2"
    )
    return store


def assert_names_position_2(caught: pytest.ExceptionInfo[CorruptEvent]) -> None:
    assert caught.value.position == 2
    assert "position 2" in str(caught.value)


async def test_fails_loudly_on_a_corrupt_event_in_read_all(corrupted: Store) -> None:
    with pytest.raises(CorruptEvent) as caught:
        await corrupted.read_all()
    assert_names_position_2(caught)
    assert positions(await corrupted.read_all(2)) == [3]


async def test_fails_loudly_on_a_corrupt_event_in_read_stream(corrupted: Store) -> None:
    with pytest.raises(CorruptEvent) as caught:
        await corrupted.read_stream("session-fill1")
    assert_names_position_2(caught)


async def test_stops_a_subscription_at_a_corrupt_event_instead_of_skipping_it(
    corrupted: Store,
) -> None:
    seen: list[int] = []
    with pytest.raises(CorruptEvent) as caught:
        async with contextlib.aclosing(corrupted.subscribe(0)) as events:
            async for record in events:
                seen.append(record.position)
    assert_names_position_2(caught)
    assert seen == []  # the page holding position 2 is refused as a whole


# --- subscriptions ------------------------------------------------------------


async def test_subscribes_from_after_the_given_position(store: Store) -> None:
    await fill(store, 5)
    got = await asyncio.wait_for(take(store, 2, after=3), TIMEOUT)
    assert positions(got) == [4, 5]


async def test_catches_up_from_the_log_then_follows_live(store: Store) -> None:
    await fill(store, 3)
    task = subscriber(store, 5)
    await started(task)

    await store.append("session-live1", 0, [registered("live1")], META)
    await store.append("session-live2", 0, [registered("live2")], META)

    got = await asyncio.wait_for(task, TIMEOUT)
    assert positions(got) == [1, 2, 3, 4, 5]
    assert [r.stream for r in got[3:]] == ["session-live1", "session-live2"]


async def test_delivers_appends_of_another_store_instance_to_a_subscriber(
    open_test_store: Factory,
) -> None:
    first, second = await open_test_store(), await open_test_store()
    task = subscriber(first, 2)
    await started(task)

    await second.append("session-s1", 0, [registered()], META)
    await second.append("session-s1", 1, [registered(client_id="b")], META)

    assert positions(await asyncio.wait_for(task, TIMEOUT)) == [1, 2]


async def test_orders_five_hundred_racing_appends_from_two_instances_for_a_subscriber(
    open_test_store: Factory,
) -> None:
    stores = await open_test_store(), await open_test_store()
    task = subscriber(stores[0], 500)
    await started(task)

    appends = [
        stores[n % 2].append(f"session-{n}", 0, [registered(str(n))], META) for n in range(500)
    ]
    appended = await asyncio.wait_for(asyncio.gather(*appends), TIMEOUT)

    expected = list(range(1, 501))
    assert sorted(r.position for [r] in appended) == expected
    assert positions(await stores[1].read_all(0, 1000)) == expected
    got = await asyncio.wait_for(task, TIMEOUT)
    assert positions(got) == expected
    assert {r.stream for r in got} == {f"session-{n}" for n in range(500)}


LISTENERS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    f" AND application_name = '{LISTENER_NAME}'"
)


async def listener_pids(store_url: str) -> set[int]:
    return {pid for (pid,) in await execute_sql(store_url, LISTENERS)}


async def reconnected(store_url: str, before: set[int], count: int = 2) -> None:
    """Wait until ``count`` new LISTEN connections replaced the ones in ``before``."""
    for _ in range(int(TIMEOUT / 0.05)):
        if len(await listener_pids(store_url) - before) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the LISTEN connections did not come back")


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_keeps_following_after_the_listen_connection_is_killed(
    open_test_store: Factory, store_url: str
) -> None:
    first, second = await open_test_store(), await open_test_store()
    before = await listener_pids(store_url)
    assert len(before) == 2
    task = subscriber(first, 2)
    await started(task)

    killed = await execute_sql(store_url, LISTENERS.replace("pid", "pg_terminate_backend(pid)", 1))
    assert [ok for (ok,) in killed] == [True, True]
    # A NOTIFY sent while nobody listens is lost: the reconnect must re-read the head.
    await second.append("session-s1", 0, [registered()], META)

    await reconnected(store_url, before)
    await second.append("session-s2", 0, [registered("s2")], META)

    assert positions(await asyncio.wait_for(task, TIMEOUT)) == [1, 2]
