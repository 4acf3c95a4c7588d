"""The lease: one holder at a time, and a takeover when the holder's connection dies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from loopgate.reactors.lease import EXPIRER_LEASE, AdvisoryLease, AlwaysHeld, lease_name

KEY = EXPIRER_LEASE + 100  # not the servers' key: this database is shared by the test run
SETTLE = 5.0


class Holder:
    def __init__(self, lease: AdvisoryLease | AlwaysHeld) -> None:
        self.lease = lease
        self.acquired = 0
        self.lost = 0

    async def on_acquired(self) -> None:
        self.acquired += 1

    def on_lost(self) -> None:
        self.lost += 1

    async def start(self) -> None:
        await self.lease.start(self.on_acquired, self.on_lost)


async def until(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_single_process_lease_is_always_held() -> None:
    holder = Holder(AlwaysHeld())
    await holder.start()
    assert (holder.lease.held, holder.acquired) == (True, 1)
    await holder.lease.stop()
    assert not holder.lease.held


@pytest.mark.postgres
async def test_one_holder_and_a_takeover_when_its_connection_dies(postgres_url: str) -> None:
    first = Holder(AdvisoryLease(postgres_url, key=KEY, name="test"))
    second = Holder(AdvisoryLease(postgres_url, key=KEY, name="test"))
    await first.start()
    await second.start()  # returns after its first, failed, try
    try:
        assert (first.lease.held, first.acquired) == (True, 1)
        assert (second.lease.held, second.acquired) == (False, 0)

        conn = await asyncpg.connect(postgres_url)
        try:
            # Cut the holder's connection, as if its process died.
            cut = await conn.fetchval(
                "SELECT count(pg_terminate_backend(a.pid)) FROM pg_locks l"
                " JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1"
                " AND l.objid = $2",
                lease_name("test"),
                KEY & 0xFFFFFFFF,
            )
            assert cut == 1
        finally:
            await conn.close()
        await until(lambda: second.lease.held)
        await until(lambda: first.lost == 1)
        assert not first.lease.held
        assert second.acquired == 1

        # A clean stop releases at once; the first one takes it back.
        await second.lease.stop()
        await until(lambda: first.lease.held)
        assert first.acquired == 2
    finally:
        await first.lease.stop()
        await second.lease.stop()
