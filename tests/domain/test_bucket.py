"""Token-bucket arithmetic: burst, refill, the wait, a clock that goes back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loopgate.domain.bucket import Bucket, Rate, is_full, level, take

RATE = Rate(per_second=2.0, burst=3)


def test_a_new_caller_gets_the_burst_then_waits_for_a_token() -> None:
    bucket = None
    for _ in range(3):
        bucket, wait = take(bucket, RATE, 100.0)
        assert wait is None
    bucket, wait = take(bucket, RATE, 100.0)
    assert wait == 0.5  # one token at 2 a second
    _, wait = take(bucket, RATE, 100.25)
    assert wait == 0.25
    _, wait = take(bucket, RATE, 100.5)
    assert wait is None


def test_refill_stops_at_the_burst() -> None:
    assert level(Bucket(0.0, 0.0), RATE, 1000.0) == 3.0
    assert is_full(Bucket(0.0, 0.0), RATE, 1.5)
    assert not is_full(Bucket(0.0, 0.0), RATE, 1.4)


def test_a_clock_that_goes_back_refills_nothing() -> None:
    assert level(Bucket(1.0, 100.0), RATE, 90.0) == 1.0


def test_a_late_call_with_an_earlier_time_does_not_make_the_same_seconds_refill_twice() -> None:
    bucket, _ = take(Bucket(0.0, 0.0), RATE, 1.0)  # refilled 2, took 1
    bucket, _ = take(bucket, RATE, 0.5)  # arrived late: nothing refilled, took 1
    assert bucket == Bucket(0.0, 1.0)
    assert level(bucket, RATE, 1.0) == 0.0


@given(
    st.lists(st.floats(min_value=-1, max_value=5, allow_nan=False), min_size=1, max_size=60),
    st.floats(min_value=0.1, max_value=100, allow_nan=False),
    st.integers(min_value=1, max_value=50),
)
def test_never_more_than_the_burst_plus_the_refill_get_through(
    gaps: list[float], per_second: float, burst: int
) -> None:
    # Negative gaps: calls that arrive out of clock order.
    rate, bucket, now, latest, allowed = Rate(per_second, burst), None, 0.0, 0.0, 0
    for gap in gaps:
        now = max(0.0, now + gap)
        latest = max(latest, now)
        bucket, wait = take(bucket, rate, now)
        if wait is None:
            allowed += 1
        else:
            assert wait > 0
            # The wait is exact: one token is there after it, not before.
            assert level(bucket, rate, bucket.at + wait) >= 1 - 1e-9
    assert allowed <= burst + per_second * latest + 1e-6
