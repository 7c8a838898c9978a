"""GCRA: bursts up to `burst`, then `rate` per second, and never more than burst + rate
in any one-second window, whatever the pattern of requests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
