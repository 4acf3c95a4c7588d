"""The hub: one subscription to the log per process, fanned out to waiters and listeners."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from loopgate import hub as hub_module
from loopgate.events import Event, Meta, RecordedEvent, SessionDeactivated, SessionRegistered
from loopgate.hub import Hub
from loopgate.store.base import EventStore

NOW = datetime(2025, 1, 1, tzinfo=UTC)
META = Meta(actor="test")
SETTLE = 5.0  # generous bound for a dispatch that should take milliseconds


def registered(session_id: str) -> SessionRegistered:
    return SessionRegistered(session_id=session_id, client_id="c", registered_at=NOW)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (briefly) for the hub's task to catch up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE
    while not condition():
        assert loop.time() < deadline, "the hub did not dispatch in time"
        await asyncio.sleep(0.005)


@pytest.fixture
async def hub(store: EventStore) -> AsyncIterator[Hub]:
    hub = Hub(store)
    await hub.start()
    yield hub
    await hub.stop()


async def append(store: EventStore, stream: str, *events: Event) -> list[RecordedEvent]:
    return await store.append(stream, None, list(events), META)


async def test_watch_is_set_by_an_append_to_its_stream_only(store: EventStore, hub: Hub) -> None:
    with hub.watch("session-a") as a, hub.watch("session-b") as b:
        await append(store, "session-b", registered("b"))
        await asyncio.wait_for(b.wait(), SETTLE)
        assert not a.is_set()

        await append(store, "session-a", registered("a"))
        await asyncio.wait_for(a.wait(), SETTLE)


async def test_every_watcher_of_a_stream_is_woken(store: EventStore, hub: Hub) -> None:
    with hub.watch("session-a") as first, hub.watch("session-a") as second:
        assert hub.waiting == 2
        await append(store, "session-a", registered("a"))
        await asyncio.wait_for(asyncio.gather(first.wait(), second.wait()), SETTLE)


async def test_an_append_before_the_wait_but_after_watch_still_wakes(
    store: EventStore, hub: Hub
) -> None:
    # The pattern the long-poll relies on: watch, read, (append happens), wait.
    with hub.watch("session-a") as changed:
        await append(store, "session-a", registered("a"))
        await until(lambda: hub.position >= 1)
        await asyncio.wait_for(changed.wait(), SETTLE)


async def test_watch_unregisters_on_exit_even_on_error(hub: Hub) -> None:
    assert hub.waiting == 0
    with hub.watch("session-a"):
        with hub.watch("session-a"), hub.watch("session-b"):
            assert hub.waiting == 3
        assert hub.waiting == 1
    assert hub.waiting == 0
    with pytest.raises(RuntimeError), hub.watch("session-a"):
        raise RuntimeError("boom")
    assert hub.waiting == 0


async def test_listeners_see_every_event_once_in_order(store: EventStore, hub: Hub) -> None:
    seen: list[RecordedEvent] = []
    hub.add_listener(seen.append)
    appended: list[RecordedEvent] = []
    appended += await append(store, "session-a", registered("a"))
    # Concurrent appends (group-committed together) are still seen once each, in order.
    batches = await asyncio.gather(
        *(append(store, f"session-{i}", registered(str(i))) for i in range(20))
    )
    appended += [record for batch in batches for record in batch]
    appended += await append(
        store, "session-a", SessionDeactivated(session_id="a", deactivated_at=NOW)
    )
    await until(lambda: len(seen) >= len(appended))
    await asyncio.sleep(0.05)  # nothing more arrives
    positions = [r.position for r in seen]
    assert positions == sorted(positions)
    assert positions == list(range(1, len(appended) + 1))
    assert {r.position for r in appended} == set(positions)
    assert seen[-1].event == SessionDeactivated(session_id="a", deactivated_at=NOW)
    assert hub.position == positions[-1]


async def test_the_hub_follows_from_the_head_at_start(store: EventStore) -> None:
    await append(store, "session-old", registered("old"))
    hub = Hub(store)
    seen: list[RecordedEvent] = []
    hub.add_listener(seen.append)
    await hub.start()
    try:
        assert hub.position == 1
        await append(store, "session-new", registered("new"))
        await until(lambda: bool(seen))
        assert [r.stream for r in seen] == ["session-new"]
    finally:
        await hub.stop()


async def test_a_failing_listener_does_not_stop_the_hub(store: EventStore, hub: Hub) -> None:
    def broken(record: RecordedEvent) -> None:
        raise ValueError("listener bug")

    seen: list[int] = []
    hub.add_listener(broken)
    hub.add_listener(lambda record: seen.append(record.position))
    with hub.watch("session-a") as changed:
        await append(store, "session-a", registered("a"))
        await asyncio.wait_for(changed.wait(), SETTLE)
    await append(store, "session-b", registered("b"))
    await until(lambda: seen == [1, 2])


async def test_the_hub_resumes_after_its_subscription_fails(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "RETRY_SECONDS", 0.01)
    real_subscribe = store.subscribe
    failures = 0

    async def flaky_subscribe(after: int = 0) -> AsyncIterator[RecordedEvent]:
        nonlocal failures
        async for record in real_subscribe(after):
            if failures == 0:
                failures += 1
                raise ConnectionError("database went away")
            yield record

    monkeypatch.setattr(store, "subscribe", flaky_subscribe)
    hub = Hub(store)
    seen: list[int] = []
    hub.add_listener(lambda record: seen.append(record.position))
    await hub.start()
    try:
        await append(store, "session-a", registered("a"))
        await append(store, "session-b", registered("b"))
        await until(lambda: seen == [1, 2])
        assert failures == 1
    finally:
        await hub.stop()


async def test_stop_ends_the_hub_task(store: EventStore) -> None:
    hub = Hub(store)
    await hub.start()
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "loopgate-hub"]
    assert len(tasks) == 1
    await hub.stop()
    assert tasks[0].done()
    await hub.stop()  # stopping twice is harmless
