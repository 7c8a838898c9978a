"""GCRA: bursts up to `burst`, then `rate` per second, and never more than burst + rate
in any one-second window, whatever the pattern of requests."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.model import MIN_RATE
from sluice.policy.gcra import advance, allowed

T0 = 1_700_000_000.0


def test_a_fresh_limit_allows_its_burst_at_once_then_its_rate() -> None:
    assert allowed(0.0, T0, rate=10, burst=5) == 5
    tat = advance(0.0, T0, 10, 5)
    assert allowed(tat, T0, 10, 5) == 0
    assert allowed(tat, T0 + 0.1, 10, 5) == 1
    assert allowed(tat, T0 + 1.0, 10, 5) == 5  # never more than the burst at once


def test_taking_fewer_than_allowed_keeps_the_rest() -> None:
    tat = advance(0.0, T0, 100, 3)
    assert allowed(tat, T0, 100, 10) == 7


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([1.0, 7.0, 50.0, 500.0]),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0.0, 0.3), min_size=1, max_size=300),
    wants=st.lists(st.integers(0, 100), min_size=1, max_size=300),
)
def test_no_one_second_window_sees_more_than_burst_plus_rate(
    rate: float, burst: int, gaps: list[float], wants: list[int]
) -> None:
    tat, now, starts = 0.0, T0, []
    for gap, want in zip(gaps, wants, strict=False):
        now += gap
        k = min(want, allowed(tat, now, rate, burst))
        tat = advance(tat, now, rate, k)
        starts += [now] * k
    for i, begin in enumerate(starts):
        in_window = sum(1 for s in starts[i:] if s < begin + 1.0)
        assert in_window <= burst + rate


def test_a_rate_too_slow_to_compute_with_counts_as_the_slowest_allowed() -> None:
    # 1 / 5e-324 is infinite: unguarded, allowed() raised on NaN, and with it every claim
    # of the dispatch round the limit was in, whatever tenant it was.
    for rate in (5e-324, 1e-320, MIN_RATE / 10):
        assert allowed(0.0, 1_000.0, rate, 2) == 2
        tat = advance(0.0, 1_000.0, rate, 2)
        assert math.isfinite(tat) and tat == advance(0.0, 1_000.0, MIN_RATE, 2)
        assert allowed(tat, 1_000.0, rate, 2) == 0
        assert allowed(tat, 1_000.0, rate, 0) == 0
