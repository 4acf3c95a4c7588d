"""Where the buckets live: in memory (SQLite, one process) or in Postgres (shared by all).

Behind one Postgres, several server processes must see one bucket per caller,
or a caller would get the limit once per process. So on Postgres each take is
one atomic statement on ``rate_buckets``: an upsert that refills and takes a
token only ``WHERE`` one is there, under the row's lock. Splitting the limit
between processes instead would need to know how many are running, and would
let one busy process refuse what an idle one would allow. The cost is one
round trip per token taken; a refusal costs a second one, to say when to come
back, and later calls of that caller are refused by this process's own view
of the bucket, with no round trip, until it may hold a token again. The
table is bookkeeping, not a fact: the log does not explain it, and losing it
only refills every bucket.

SQLite is embedded: one process writes it, so its buckets stay in memory,
where a take costs no write (a SQLite write waits for the one writer and its
fsync). They are forgotten once full again, so memory stays bounded by the
callers active in the last ``burst / per_second`` seconds.
"""

from __future__ import annotations

from typing import Protocol

from loopgate.domain.bucket import Bucket, Rate, is_full, level, take
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
        self.put(name, bucket, rate, now)
        return wait

    def get(self, name: str) -> Bucket | None:
        return self._buckets.get(name)

    def put(self, name: str, bucket: Bucket, rate: Rate, now: float) -> None:
        self._buckets[name] = bucket
        if len(self._buckets) > PRUNE_AT:
            self._prune(rate, now)

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
    """The shared buckets, with this process's view of them in front.

    The view holds at least as many tokens as the shared bucket: it only loses
    a token when the shared bucket did, and after a refusal it is set to what
    the shared bucket holds. So when the view is empty the shared bucket is
    too, and the call is refused with no round trip: a flood costs the
    database one statement per token, not one per call.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._view = MemoryBuckets()

    async def take(self, name: str, rate: Rate, now: float) -> float | None:
        after, wait = take(self._view.get(name), rate, now)
        if wait is not None:
            return wait
        burst, per_second = float(rate.burst), rate.per_second
        taken = await self.store.execute(
            TAKE_SQL, (name, burst - 1, now, burst, per_second, burst, per_second)
        )
        if taken:
            self._view.put(name, after, rate, now)
            return None
        rows = await self.store.fetch(
            "SELECT tokens, updated_at FROM rate_buckets WHERE name = ?", (name,)
        )
        stored = Bucket(float(rows[0]["tokens"]), float(rows[0]["updated_at"])) if rows else None
        self._view.put(name, Bucket(level(stored, rate, now), now), rate, now)
        _, wait = take(stored, rate, now)
        # Refilled in between (or never there): the next call will find a token.
        return wait if wait is not None else 0.0
