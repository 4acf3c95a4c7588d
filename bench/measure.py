"""Closed-loop load: N workers call an async operation back to back for a fixed time.

Each worker starts its next call as soon as the previous one returns. Calls
that *complete* inside the measuring window (after the warm-up) are counted
and their latencies kept; calls still in flight when the window closes are
awaited but not counted. A worker stops at its first error, so a broken target
cannot spin, and the run reports the error instead of a throughput.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

Op = Callable[[], Awaitable[object]]
"""One operation under test, e.g. one append; each worker calls its own op."""

GRACE_SECONDS = 30.0
"""How long in-flight calls may take to finish after the window closes."""


@dataclass(frozen=True)
class Timing:
    """How long to warm up and then measure, in seconds."""

    warmup: float
    seconds: float


@dataclass
class Sample:
    """What one closed-loop run measured."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    completed: int = 0
    errors: list[BaseException] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Operations per second inside the window."""
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        """The nearest-rank ``q`` quantile (0 < q <= 1) of latency, in seconds."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def run_closed_loop(ops: Sequence[Op], timing: Timing) -> Sample:
    """Run one worker per op for ``timing.warmup + timing.seconds`` and measure."""
    loop = asyncio.get_running_loop()
    window_start = loop.time() + timing.warmup
    window_end = window_start + timing.seconds
    sample = Sample(seconds=timing.seconds)

    async def worker(op: Op) -> None:
        while (started := loop.time()) < window_end:
            try:
                await op()
            except Exception as exc:
                sample.errors.append(exc)
                return
            finished = loop.time()
            sample.completed += 1
            if window_start <= finished < window_end:
                sample.latencies.append(finished - started)

    async with asyncio.timeout(timing.warmup + timing.seconds + GRACE_SECONDS):
        async with asyncio.TaskGroup() as workers:
            for op in ops:
                workers.create_task(worker(op))
    return sample
