"""The rate-limit buckets on both stores: Postgres' shared table and SQLite's memory agree."""

from __future__ import annotations

import asyncio

import pytest

from loopgate.config import Config, LimitsConfig
from loopgate.domain.bucket import Rate
from loopgate.errors import TooManyRequests
from loopgate.limits import Limits
from loopgate.limits.buckets import PRUNE_AT, Buckets, MemoryBuckets, StoreBuckets
from loopgate.store import open_store
from loopgate.store.base import EventStore

RATE = Rate(per_second=2.0, burst=3)


async def takes(buckets: Buckets, times: list[float]) -> list[float | None]:
    return [await buckets.take("create:apikey:k1", RATE, now) for now in times]


async def test_burst_then_refill_then_wait(store: EventStore) -> None:
    # The buckets each backend uses: Postgres' table, SQLite's memory.
    buckets = Limits.from_config(Config(), store).buckets
    assert isinstance(buckets, StoreBuckets if store.backend == "postgres" else MemoryBuckets)
    waits = await takes(buckets, [100.0, 100.0, 100.0, 100.0, 100.25, 100.5, 100.5])
    assert waits[:3] == [None, None, None]
    assert waits[3] == pytest.approx(0.5)
    assert waits[4] == pytest.approx(0.25)
    assert waits[5] is None
    assert waits[6] == pytest.approx(0.5)
    # Another caller has a bucket of its own.
    assert await buckets.take("create:apikey:k2", RATE, 100.5) is None


@pytest.mark.postgres
async def test_two_processes_on_one_postgres_share_one_bucket(postgres_url: str) -> None:
    # Two stores on one database stand for two server processes.
    first, second = await open_store(postgres_url), await open_store(postgres_url)
    try:
        await first.execute("DELETE FROM rate_buckets")
        shared = [StoreBuckets(first), StoreBuckets(second)]
        rate = Rate(per_second=0.001, burst=20)
        waits = await asyncio.gather(
            *(shared[i % 2].take("create:apikey:busy", rate, 100.0) for i in range(60))
        )
        assert sum(wait is None for wait in waits) == 20
    finally:
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_once_refused_a_caller_is_refused_without_asking_postgres(
    postgres_url: str,
) -> None:
    store = await open_store(postgres_url)
    try:
        buckets = StoreBuckets(store)
        for _ in range(RATE.burst):
            assert await buckets.take("login:address:x", RATE, 100.0) is None
        assert await buckets.take("login:address:x", RATE, 100.0) == pytest.approx(0.5)
        # Were Postgres asked again, the emptied table would let the next call through.
        await store.execute("DELETE FROM rate_buckets")
        assert await buckets.take("login:address:x", RATE, 100.25) == pytest.approx(0.25)
        assert await buckets.take("login:address:x", RATE, 100.5) is None
    finally:
        await store.close()


async def test_a_memory_of_many_callers_forgets_the_full_buckets() -> None:
    buckets = MemoryBuckets()
    for i in range(PRUNE_AT):
        await buckets.take(f"create:address:{i}", RATE, 0.0)
    await buckets.take("create:address:late", RATE, 10.0)
    assert len(buckets) == 1


async def test_limits_say_when_to_come_back_and_a_zero_rate_is_no_limit(
    store: EventStore,
) -> None:
    now = [100.0]
    config = Config(limits=LimitsConfig(create_rate=0.5, create_burst=1, answer_rate=0))
    limits = Limits.from_config(config, store, clock=lambda: now[0])
    await limits.take("create", "apikey:k")
    with pytest.raises(TooManyRequests) as refused:
        await limits.take("create", "apikey:k")
    assert (refused.value.code, refused.value.retry_after) == ("rate_limited", 2)
    for _ in range(100):
        await limits.take("answer", "apikey:k")
    now[0] += 2
    await limits.take("create", "apikey:k")
