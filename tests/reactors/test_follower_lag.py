"""A follower's lag: how far its checkpoint is behind the log's head, work in flight included."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from waiting import eventually

from loopgate.commands.base import utcnow
from loopgate.events import Meta, RecordedEvent, SessionRegistered
from loopgate.reactors.follower import LogFollower
from loopgate.reactors.lease import AlwaysHeld
from loopgate.store.base import EventStore


class Held(LogFollower):
    """Holds the work for position 1 until ``release`` is set; the rest finish at once."""

    name = "test-lag"

    def __init__(self, store: EventStore) -> None:
        super().__init__(store, utcnow, AlwaysHeld("test"))
        self.release = asyncio.Event()
        self.done: list[int] = []

    def work_for(self, record: RecordedEvent) -> Coroutine[Any, Any, None] | None:
        return self._work(record.position)

    async def _work(self, position: int) -> None:
        if position == 1:
            await self.release.wait()
        self.done.append(position)


async def _register(store: EventStore, n: int) -> None:
    event = SessionRegistered(
        session_id=f"s{n}", client_id="ci", telegram_id=None, registered_at=utcnow()
    )
    await store.append(f"session-s{n}", 0, [event], Meta())


async def test_lag_counts_from_the_oldest_work_in_flight_and_drops_when_it_is_done(
    store: EventStore,
) -> None:
    follower = Held(store)
    assert follower.lag is None  # not following yet: nothing to show
    await follower.start()
    try:
        for n in range(3):
            await _register(store, n)
        await eventually(lambda: len(follower.done) == 2)

        assert follower.lag == 3  # position 1 still in flight: the checkpoint stays at 0

        follower.release.set()
        await eventually(lambda: len(follower.done) == 3)
        assert follower.lag == 0
    finally:
        await follower.stop()
    assert follower.lag is None
