"""The autoscaling decision (issue 18, point 3): processes = ceil(load / slots) within
[MIN, MAX]; up at once, down only after a whole quiet window and only to the most the
window wanted, so a load that comes and goes never makes the count flap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.policy.autoscale import DOWN_AFTER_S, Autoscale


@pytest.mark.parametrize(
    ("load", "wanted"),
    [(0, 0), (0.5, 1), (8, 1), (9, 2), (80, 10), (10_000, 10), (-3, 0)],
)
def test_wanted_processes_hold_the_load_within_the_bounds(load: float, wanted: int) -> None:
    assert Autoscale(0, 10, slots=8).wanted(load) == wanted


def test_the_minimum_is_kept_with_no_load() -> None:
    assert Autoscale(2, 10, slots=8).wanted(0) == 2


def test_a_burst_scales_up_at_once() -> None:
    policy = Autoscale(0, 10, slots=4)
    assert policy.decide(0.0, 0, current=0) == 0
    assert policy.decide(0.2, 40, current=0) == 10


def test_scaling_down_waits_for_a_whole_quiet_window() -> None:
    policy = Autoscale(0, 10, slots=4, down_after_s=10)
    assert policy.decide(0.0, 40, current=0) == 10
    assert policy.decide(1.0, 0, current=10) == 10
    assert policy.decide(9.9, 0, current=10) == 10  # the 40 at t=0 is still in the window
    assert policy.decide(10.5, 0, current=10) == 0  # a whole window wanted none


def test_scaling_down_goes_to_the_most_the_window_wanted() -> None:
    policy = Autoscale(1, 10, slots=4, down_after_s=10)
    policy.decide(0.0, 40, current=0)
    policy.decide(5.0, 12, current=10)
    assert policy.decide(12.0, 4, current=10) == 3  # 12 at t=5 is in the window
    assert policy.decide(16.0, 4, current=3) == 1


def test_a_new_policy_does_not_scale_down_before_it_watched_a_window() -> None:
    policy = Autoscale(0, 10, slots=4, down_after_s=10)
    assert policy.decide(100.0, 0, current=5) == 5
    assert policy.decide(109.0, 0, current=5) == 5
    assert policy.decide(110.0, 0, current=5) == 0


@pytest.mark.parametrize(("low", "high", "slots"), [(-1, 5, 1), (3, 2, 1), (0, 0, 1), (0, 5, 0)])
def test_bad_bounds_are_refused(low: int, high: int, slots: int) -> None:
    with pytest.raises(ValueError):
        Autoscale(low, high, slots)


@settings(max_examples=200, deadline=None)
@given(
    loads=st.lists(st.integers(0, 200), min_size=1, max_size=200),
    step=st.sampled_from([0.1, 0.2, 1.0]),
)
def test_the_count_never_goes_down_then_up_within_a_window_of_a_steady_pattern(
    loads: list[int], step: float
) -> None:
    """Invariants: always within the bounds; up at once to what the load wants; a step
    down never drops below what any sample of the last window wanted."""
    policy = Autoscale(1, 20, slots=8)
    current, history = 1, []
    for i, load in enumerate(loads):
        now = i * step
        history.append((now, policy.wanted(load)))
        target = policy.decide(now, load, current)
        assert 1 <= target <= 20
        assert target >= policy.wanted(load)
        if target < current:
            window = [n for t, n in history if t >= now - DOWN_AFTER_S]
            assert target >= max(window)
            assert now >= DOWN_AFTER_S
        current = target
