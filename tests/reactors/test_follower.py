"""The log follower keeps following when the store cannot be read for a while."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from loopgate.commands.base import utcnow
from loopgate.errors import StoreUnavailable
from loopgate.events import Meta, RecordedEvent, SessionRegistered
from loopgate.reactors import follower as follower_module
from loopgate.reactors.follower import LogFollower
from loopgate.reactors.lease import AlwaysHeld
from loopgate.store.base import EventStore


class UnreadableAtFirst:
    """A store whose log cannot be read the first ``failures`` times it is followed."""

    def __init__(self, store: EventStore, failures: int) -> None:
        self._store, self.failures = store, failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def subscribe(self, after: int = 0) -> AsyncIterator[RecordedEvent]:
        if self.failures:
            self.failures -= 1
            return self._unreadable()
        return self._store.subscribe(after)

    async def _unreadable(self) -> AsyncIterator[RecordedEvent]:
        raise StoreUnavailable("Postgres read failed: the database system is shutting down")
        yield  # an async generator, like subscribe


class Seen(LogFollower):
    name = "test-follower"

    def __init__(self, store: Any) -> None:
        super().__init__(store, utcnow, AlwaysHeld("test"))
        self.positions: list[int] = []
        self.three = asyncio.Event()

    def work_for(self, record: RecordedEvent) -> Coroutine[Any, Any, None] | None:
        return self._note(record.position)

    async def _note(self, position: int) -> None:
        self.positions.append(position)
        if len(self.positions) == 3:
            self.three.set()


async def test_follows_on_after_the_log_could_not_be_read_and_misses_nothing(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follower_module, "RETRY_SECONDS", 0.05)
    flaky = UnreadableAtFirst(store, failures=2)
    follower = Seen(flaky)
    await follower.start()
    try:
        for n in range(3):
            event = SessionRegistered(
                session_id=f"s{n}", client_id="ci", telegram_id=None, registered_at=utcnow()
            )
            await store.append(f"session-s{n}", 0, [event], Meta())
        await asyncio.wait_for(follower.three.wait(), 5)
    finally:
        await follower.stop()
    assert flaky.failures == 0
    assert follower.positions == [1, 2, 3]
