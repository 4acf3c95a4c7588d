"""``Limits``: the configured buckets, and the 429 a caller gets once one is empty."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal

from loopgate.config import Config
from loopgate.domain.bucket import Rate
from loopgate.errors import TooManyRequests
from loopgate.limits.buckets import Buckets, MemoryBuckets, StoreBuckets
from loopgate.store.base import EventStore

Action = Literal["create", "answer", "login"]
WHAT = {"create": "requests created", "answer": "answers", "login": "login attempts"}


class Limits:
    """One token bucket per action and caller (``take``); no bucket at all for a rate of 0."""

    def __init__(
        self,
        rates: dict[Action, Rate],
        buckets: Buckets,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rates, self.buckets, self.clock = rates, buckets, clock

    @classmethod
    def from_config(
        cls, config: Config, store: EventStore, clock: Callable[[], float] = time.time
    ) -> Limits:
        """The ``limits.*`` rates, over Postgres' shared buckets or, on SQLite, memory."""
        limits = config.limits
        rates: dict[Action, Rate] = {
            "create": Rate(limits.create_rate, limits.create_burst),
            "answer": Rate(limits.answer_rate, limits.answer_burst),
            "login": Rate(limits.login_rate, limits.login_burst),
        }
        buckets = StoreBuckets(store) if store.backend == "postgres" else MemoryBuckets()
        return cls(rates, buckets, clock)

    @classmethod
    def unlimited(cls) -> Limits:
        return cls({}, MemoryBuckets())

    async def take(self, action: Action, caller: str) -> None:
        """Let one ``action`` of ``caller`` through, or raise 429 ``rate_limited``.

        ``caller`` is the credential (``apikey:<id>``, a user id) or, for an
        anonymous caller, ``address:<ip>``; it is a bucket's name, never logged.
        """
        rate = self.rates.get(action)
        if rate is None or rate.unlimited:
            return
        wait = await self.buckets.take(f"{action}:{caller}", rate, self.clock())
        if wait is None:
            return
        raise TooManyRequests(
            f"too many {WHAT[action]}: at most {rate.burst} at once and {rate.per_second:g} "
            "a second for each caller; try again later",
            retry_after=max(1, math.ceil(wait)),
            code="rate_limited",
        )
