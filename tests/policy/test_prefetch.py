"""The prefetch window: what the slots finish within the round trip, never behind a
long task."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluice.policy.prefetch import COVER_S, MAX_FACTOR, Prefetch


def test_nothing_ahead_before_any_attempt_ran() -> None:
    assert Prefetch(10).window([]) == 0


def test_short_tasks_get_the_cap() -> None:
    p = Prefetch(10)
    for _ in range(20):
        p.ran(0.00005)  # a no-op
    assert p.window([0.0] * 10) == MAX_FACTOR * 10


def test_the_window_is_what_the_slots_finish_within_the_round_trip() -> None:
    p = Prefetch(10)
    p.ran(0.002)
    # 10 slots finishing a 2 ms task each finish 25 within 5 ms.
    assert p.window([0.001] * 10) == 25
    p.ran(0.002)
    assert p.window([]) == 25


def test_tasks_longer_than_the_round_trip_get_nothing_ahead() -> None:
    p = Prefetch(10)
    p.ran(0.06)
    assert p.window([]) == 0
    p = Prefetch(1)
    p.ran(1.0)
    assert p.window([0.5]) == 0


def test_a_slot_busy_past_the_round_trip_does_not_count() -> None:
    p = Prefetch(4)
    for _ in range(10):
        p.ran(0.0001)
    assert p.window([0.0, 0.0, 0.0, 0.0]) == 16
    # One task turned out long: only three slots turn over.
    assert p.window([3600.0, 0.0, 0.0, 0.0]) == 12
    # Every slot held by a long task: nothing waits behind them.
    assert p.window([COVER_S * 2] * 4) == 0


def test_the_mean_follows_a_change_of_pace() -> None:
    p = Prefetch(10)
    for _ in range(50):
        p.ran(0.0001)
    assert p.window([]) == 40
    for _ in range(30):
        p.ran(0.5)  # the tasks became slow
    assert p.window([]) == 0


def test_no_slots_no_window() -> None:
    p = Prefetch(0)
    p.ran(0.0)
    assert p.window([]) == 0


@given(
    slots=st.integers(min_value=1, max_value=500),
    runs=st.lists(st.floats(min_value=0, max_value=3600), min_size=1, max_size=30),
    ages=st.lists(st.floats(min_value=0, max_value=3600), max_size=500),
)
def test_the_window_is_bounded_and_waits_about_the_round_trip(
    slots: int, runs: list[float], ages: list[float]
) -> None:
    p = Prefetch(slots)
    for r in runs:
        p.ran(r)
    ages = ages[:slots]
    w = p.window(ages)
    turning = slots - sum(1 for a in ages if a > COVER_S)
    assert 0 <= w <= MAX_FACTOR * max(0, turning)
    assert p.mean_s is not None
    if w and p.mean_s > 0:
        # The last task ahead starts within about the round trip, at the current pace.
        assert w / turning * p.mean_s <= COVER_S + 1e-12
