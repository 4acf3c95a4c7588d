"""Where the buckets live: in memory (SQLite, one process) or in Postgres (shared by all).

Behind one Postgres, several server processes must see one bucket per caller,
or a caller would get the limit once per process. So on Postgres each take is
one atomic statement on ``rate_buckets``: an upsert that refills and takes a
token only ``WHERE`` one is there, under the row's lock. Splitting the limit
between processes instead would need to know how many are running, and would
let one busy process refuse what an idle one would allow. The cost is one
round trip per limited call; a refusal costs a second one, to say when to
come back. The table is bookkeeping, not a fact: the log does not explain it,
and losing it only refills every bucket.

SQLite is embedded: one process writes it, so its buckets stay in memory,
where a take costs no write (a SQLite write waits for the one writer and its
fsync). They are forgotten once full again, so memory stays bounded by the
callers active in the last ``burst / per_second`` seconds.
"""

from __future__ import annotations

from typing import Protocol

from loopgate.domain.bucket import Bucket, Rate, is_full, take
from loopgate.store.base import EventStore

# Past this many buckets, the full ones are forgotten (they would start full anyway).
PRUNE_AT = 10_000


class Buckets(Protocol):
    async def take(self, name: str, rate: Rate, now: float) -> float | None:
        """Take a token from bucket ``name``: None, or the seconds until one is there."""
        ...


class MemoryBuckets:
    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}

    async def take(self, name: str, rate: Rate, now: float) -> float | None:
        bucket, wait = take(self._buckets.get(name), rate, now)
        self._buckets[name] = bucket
        if len(self._buckets) > PRUNE_AT:
            self._prune(rate, now)
        return wait

    def _prune(self, rate: Rate, now: float) -> None:
        # One rate per name prefix in practice; the one at hand is a fair bound for all.
        for name in [n for n, b in self._buckets.items() if is_full(b, rate, now)]:
            del self._buckets[name]

    def __len__(self) -> int:
        return len(self._buckets)


# The refill, as in domain/bucket.py: min(burst, tokens + elapsed * rate), elapsed >= 0.
_LEVEL = (
    "LEAST(?, rate_buckets.tokens + GREATEST(0, excluded.updated_at - rate_buckets.updated_at) * ?)"
)
TAKE_SQL = (
    "INSERT INTO rate_buckets (name, tokens, updated_at) VALUES (?, ?, ?)"
    f" ON CONFLICT (name) DO UPDATE SET tokens = {_LEVEL} - 1,"
    " updated_at = GREATEST(rate_buckets.updated_at, excluded.updated_at)"
    f" WHERE {_LEVEL} >= 1"
)


class StoreBuckets:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def take(self, name: str, rate: Rate, now: float) -> float | None:
        burst, per_second = float(rate.burst), rate.per_second
        taken = await self.store.execute(
            TAKE_SQL, (name, burst - 1, now, burst, per_second, burst, per_second)
        )
        if taken:
            return None
        rows = await self.store.fetch(
            "SELECT tokens, updated_at FROM rate_buckets WHERE name = ?", (name,)
        )
        stored = Bucket(float(rows[0]["tokens"]), float(rows[0]["updated_at"])) if rows else None
        _, wait = take(stored, rate, now)
        # Refilled in between (or never there): the next call will find a token.
        return wait if wait is not None else 0.0
