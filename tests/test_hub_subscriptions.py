"""Hub subscriptions: every committed event, in order, exactly once, with bounded memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from loopgate import hub as hub_module
from loopgate.events import Meta, RecordedEvent, SessionRegistered
from loopgate.hub import Hub, Subscription
from loopgate.store.base import EventStore

NOW = datetime(2025, 1, 1, tzinfo=UTC)
META = Meta(actor="test")
SETTLE = 5.0


@pytest.fixture
async def hub(store: EventStore) -> AsyncIterator[Hub]:
    hub = Hub(store)
    await hub.start()
    yield hub
    await hub.stop()


async def append(store: EventStore, n: int, prefix: str = "s") -> list[int]:
    positions = []
    for i in range(n):
        event = SessionRegistered(session_id=f"{prefix}{i}", client_id="c", registered_at=NOW)
        [record] = await store.append(f"session-{prefix}{i}", None, [event], META)
        positions.append(record.position)
    return positions


async def take(subscription: Subscription, n: int) -> list[int]:
    return [(await asyncio.wait_for(anext(subscription), SETTLE)).position for _ in range(n)]


async def until_hub_at(hub: Hub, position: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE
    while hub.position < position:
        assert loop.time() < deadline, "the hub did not dispatch in time"
        await asyncio.sleep(0.005)


async def test_a_subscription_gets_every_later_event_in_order(store: EventStore, hub: Hub) -> None:
    await append(store, 2, "before")
    await until_hub_at(hub, await store.head())
    with hub.subscribe() as subscription:
        assert hub.subscribers == 1
        assert subscription.position == hub.position
        positions = await append(store, 5)
        assert await take(subscription, 5) == positions
        assert await subscription.next(wait_seconds=0.05) is None
    assert hub.subscribers == 0


async def test_every_subscriber_gets_every_event_once(store: EventStore, hub: Hub) -> None:
    with hub.subscribe() as first, hub.subscribe() as second:
        positions = await append(store, 10)
        assert await take(first, 10) == positions
        assert await take(second, 10) == positions
        assert await first.next(wait_seconds=0.05) is None


async def test_an_overflowing_subscriber_catches_up_from_the_log(
    store: EventStore, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "SUBSCRIPTION_QUEUE_SIZE", 5)
    reads = 0
    read_all = store.read_all

    async def counting_read_all(after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        nonlocal reads
        reads += 1
        return await read_all(after, limit)

    with hub.subscribe() as slow, hub.subscribe() as fast:
        positions = await append(store, 50)
        await until_hub_at(hub, positions[-1])
        assert slow.catching_up, "50 events into a queue of 5 must overflow"
        assert slow._queue.qsize() == 0, "an overflowed queue is emptied, not grown"
        monkeypatch.setattr(store, "read_all", counting_read_all)
        assert await take(slow, 50) == positions
        assert reads >= 1
        # Back on the live feed: later events come through the queue, none twice.
        more = await append(store, 3, "later")
        assert await take(slow, 3) == more
        assert await slow.next(wait_seconds=0.05) is None
        assert not slow.catching_up
        assert slow._queue.qsize() == 0
        last = await append(store, 1, "last")
        assert await take(slow, 1) == last
        assert fast.catching_up  # it never read either
        assert await take(fast, 53) == positions + more


async def test_closing_ends_the_subscription(store: EventStore, hub: Hub) -> None:
    with hub.subscribe() as subscription:
        waiting = asyncio.create_task(subscription.next())
        await asyncio.sleep(0.01)
        hub.close_subscriptions()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, SETTLE)
    assert hub.subscribers == 0


async def test_watch_and_listeners_still_work_beside_subscriptions(
    store: EventStore, hub: Hub
) -> None:
    seen: list[int] = []
    hub.add_listener(lambda record: seen.append(record.position))
    with hub.subscribe() as subscription, hub.watch("session-w0") as changed:
        [position] = await append(store, 1, "w")
        await asyncio.wait_for(changed.wait(), SETTLE)
        assert await take(subscription, 1) == [position]
        assert seen == [position]


async def test_a_routed_subscription_is_pushed_only_its_stream_or_tenant(
    store: EventStore, hub: Hub
) -> None:
    # A thousand single-request streams must not all be woken by every answer.
    with (
        hub.subscribe(stream="session-mine0") as by_stream,
        hub.subscribe(tenant="elsewhere") as by_tenant,
        hub.subscribe(tenant="local") as local,
    ):
        others = await append(store, 2, "other")
        mine = await append(store, 1, "mine")
        assert await take(by_stream, 1) == mine
        assert await by_stream.next(wait_seconds=0.05) is None
        assert await by_tenant.next(wait_seconds=0.05) is None
        assert await take(local, 3) == [*others, *mine]
