"""Token buckets: how many calls a caller may make now, and when the next one is allowed.

A bucket holds up to ``burst`` tokens and gains ``per_second`` of them every
second; each call takes one. A full bucket lets ``burst`` calls through at
once, then ``per_second`` a second. Pure arithmetic: the time is passed in
(seconds since the epoch, so several processes can share one bucket).
"""

from __future__ import annotations

import msgspec


class Rate(msgspec.Struct, frozen=True):
    """``per_second`` tokens a second, at most ``burst`` saved up; ``per_second = 0``: no limit."""

    per_second: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0


class Bucket(msgspec.Struct, frozen=True):
    """``tokens`` left at the time ``at``."""

    tokens: float
    at: float


def level(bucket: Bucket | None, rate: Rate, now: float) -> float:
    """The tokens in the bucket at ``now``; a bucket never seen is full."""
    if bucket is None:
        return float(rate.burst)
    # A clock that went back (another process's) refills nothing, and takes nothing either.
    return min(float(rate.burst), bucket.tokens + max(0.0, now - bucket.at) * rate.per_second)


def take(bucket: Bucket | None, rate: Rate, now: float) -> tuple[Bucket, float | None]:
    """Take one token: the bucket after, and None; or, when empty, the bucket and the wait.

    The wait is the seconds until one whole token has been refilled.
    """
    tokens = level(bucket, rate, now)
    # Calls reach the bucket out of clock order (one waited for a connection):
    # its time never goes back, or the seconds in between would refill twice.
    at = now if bucket is None else max(now, bucket.at)
    if tokens >= 1:
        return Bucket(tokens - 1, at), None
    return Bucket(tokens, at), (1 - tokens) / rate.per_second


def is_full(bucket: Bucket, rate: Rate, now: float) -> bool:
    """True once the bucket has refilled: forgetting it then changes nothing."""
    return level(bucket, rate, now) >= rate.burst
