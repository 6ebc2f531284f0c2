"""Pacing (token buckets): however calls come, what goes out at once stays within rate × window + burst."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from services.notifier.pacing import Pacing, TokenBucket

# Float rounding in the bucket's arithmetic, far below one call.
ROUNDING = 1e-6

# Gaps between calls, in seconds: bursts of calls at the same instant as well as idle spells.
gaps = st.lists(st.one_of(st.just(0.0), st.floats(0, 3, allow_nan=False)), min_size=1, max_size=60)
rates = st.floats(0.5, 30, allow_nan=False)
bursts = st.integers(1, 5).map(float)
windows = st.floats(0.01, 10, allow_nan=False)


def times_of(between: list[float]) -> list[float]:
    times, now = [], 100.0
    for gap in between:
        now += gap
        times.append(now)
    return times


def most_in_any_window(times: list[float], window: float) -> int:
    """The most of `times` (sorted) that fall into one span of `window` seconds."""
    # The busiest span can always be moved to start at one of the times.
    return max((sum(1 for t in times if start <= t <= start + window) for start in times), default=0)


def assert_within(times: list[float], rate: float, burst: float, window: float) -> None:
    assert most_in_any_window(times, window) <= rate * window + burst + ROUNDING, (times, rate, burst, window)


@given(between=gaps, rate=rates, burst=bursts, window=windows)
def test_a_bucket_lets_through_at_once_no_more_than_rate_times_window_plus_burst(between, rate, burst, window):
    bucket = TokenBucket(rate, burst)
    times = times_of(between)
    at_once = [now for now in times if bucket.wait_for(now) == 0]
    assert_within(at_once, rate, burst, window)


@given(between=gaps, rate=rates, burst=bursts)
def test_a_bucket_owing_tokens_makes_later_callers_wait_longer_not_shorter(between, rate, burst):
    bucket = TokenBucket(rate, burst)
    times = times_of(between)
    # Each call goes out when it is told to: never before the previous one, and never early.
    going_out = [now + bucket.wait_for(now) for now in times]
    assert all(later >= earlier - ROUNDING for earlier, later in itertools.pairwise(going_out))
    assert all(out >= now for out, now in zip(going_out, times, strict=True))


@given(
    calls=st.lists(
        st.tuples(st.one_of(st.just(0.0), st.floats(0, 2, allow_nan=False)), st.sampled_from(["7", "8", "9"])),
        min_size=1,
        max_size=60,
    ),
    overall=rates,
    per_key=rates,
    burst_per_key=bursts,
    window=windows,
)
def test_pacing_holds_both_the_overall_and_each_keys_limit(calls, overall, per_key, burst_per_key, window):
    clock = FakeClock()
    pacing = Pacing(overall, per_key, burst_per_key=burst_per_key, clock=clock)
    at_once: list[tuple[float, str]] = []
    for gap, key in calls:
        clock.now += gap
        if pacing.reserve(key) == 0:
            at_once.append((clock.now, key))

    # The overall bucket saves up one second's worth.
    assert_within([now for now, _ in at_once], overall, overall, window)
    for key in {key for _, key in calls}:
        assert_within([now for now, called in at_once if called == key], per_key, burst_per_key, window)


def test_a_caller_that_must_wait_is_told_how_long():
    clock = FakeClock()
    pacing = Pacing(30, 1, burst_per_key=3, clock=clock)
    assert [pacing.reserve("7") for _ in range(3)] == [0, 0, 0]
    # The fourth and fifth message to one chat wait for its bucket: one more token a second.
    assert [round(pacing.reserve("7"), 6) for _ in range(2)] == [1.0, 2.0]
    # Another chat is not held up by the first one's debt.
    assert pacing.reserve("8") == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
