"""Retry decisions: full-jitter backoff with a floor, and what follows a failed attempt."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.contract import RetryPolicy
from sluice.model import DEAD, READY, SCHEDULED
from sluice.policy.backoff import backoff_delay, next_after_failure

NOW = 1_700_000_000.0
LARGEST_RANDOM = 1.0 - 2.0**-53  # the largest value random.random() returns


class StubRng(random.Random):
    """A random source that always draws the same value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


POLICY = RetryPolicy(max_attempts=5, base_s=2.0, min_backoff_s=1.0, cap_s=60.0)


@pytest.mark.parametrize("attempt", [1, 2, 5, 30, 10_000])
def test_backoff_delay_is_the_floor_when_the_draw_is_zero(attempt: int) -> None:
    assert backoff_delay(POLICY, attempt, StubRng(0.0)) == POLICY.min_backoff_s


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (30, 60.0), (10_000, 60.0)],
)
def test_backoff_delay_reaches_floor_plus_ceiling_when_the_draw_is_near_one(
    attempt: int, ceiling: float
) -> None:
    delay = backoff_delay(POLICY, attempt, StubRng(LARGEST_RANDOM))

    assert delay == pytest.approx(POLICY.min_backoff_s + ceiling)
    assert delay <= POLICY.min_backoff_s + ceiling


@given(
    base=st.floats(min_value=0.001, max_value=1000.0),
    floor=st.floats(min_value=0.0, max_value=1000.0),
    cap=st.floats(min_value=0.001, max_value=1e7),
    attempt=st.integers(min_value=1, max_value=1000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_delay_stays_between_floor_and_floor_plus_capped_exponential(
    base: float, floor: float, cap: float, attempt: int, seed: int
) -> None:
    policy = RetryPolicy(base_s=base, min_backoff_s=floor, cap_s=cap)

    delay = backoff_delay(policy, attempt, random.Random(seed))

    assert floor <= delay <= floor + min(cap, base * 2 ** (attempt - 1))


# (case, policy, kwargs of next_after_failure, expected (state, run_at))
CASES = [
    ("not retryable", POLICY, {"retryable": False}, (DEAD, None)),
    ("not retryable even with a delay", POLICY, {"retryable": False, "delay": 5.0}, (DEAD, None)),
    ("last attempt used", POLICY, {"attempt": 5}, (DEAD, None)),
    ("more attempts than allowed", POLICY, {"attempt": 7}, (DEAD, None)),
    ("explicit delay 0 runs again at once", POLICY, {"delay": 0.0}, (READY, NOW)),
    ("negative delay counts as 0", POLICY, {"delay": -3.0}, (READY, NOW)),
    ("explicit delay schedules", POLICY, {"delay": 5.0}, (SCHEDULED, NOW + 5.0)),
    ("backoff floor schedules", POLICY, {}, (SCHEDULED, NOW + 1.0)),
    (
        "zero floor and zero draw runs again at once",
        RetryPolicy(min_backoff_s=0.0),
        {},
        (READY, NOW),
    ),
    (
        "retry lands exactly at max_retry_duration",
        POLICY,
        {"created_at": NOW - POLICY.max_retry_duration_s + 5.0, "delay": 5.0},
        (SCHEDULED, NOW + 5.0),
    ),
    (
        "retry lands past max_retry_duration",
        POLICY,
        {"created_at": NOW - POLICY.max_retry_duration_s + 5.0, "delay": 6.0},
        (DEAD, None),
    ),
    (
        "backoff past max_retry_duration",
        RetryPolicy(max_retry_duration_s=0.5),
        {},
        (DEAD, None),
    ),
]


@pytest.mark.parametrize(
    ("policy", "overrides", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_next_after_failure(
    policy: RetryPolicy, overrides: dict[str, object], expected: tuple[str, float | None]
) -> None:
    kwargs: dict[str, object] = {
        "attempt": 1,
        "max_attempts": POLICY.max_attempts,
        "created_at": NOW,
        "now": NOW,
        "rng": StubRng(0.0),
    }
    kwargs.update(overrides)

    assert next_after_failure(policy, **kwargs) == expected  # type: ignore[arg-type]
