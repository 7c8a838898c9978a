"""Retry decisions (DESIGN §4, ALGORITHMS §8): full jitter with a floor."""

from __future__ import annotations

import random
from typing import Final

from ..contract import RetryPolicy
from ..model import DEAD, READY, SCHEDULED

MAX_EXPONENT: Final = 62  # 2**62 s is far past any cap; keeps the float finite


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Delay before the retry that follows failed attempt number `attempt` (1-based)."""
    ceiling = min(policy.cap_s, policy.base_s * 2.0 ** min(attempt - 1, MAX_EXPONENT))
    return policy.min_backoff_s + rng.random() * ceiling


def next_after_failure(
    policy: RetryPolicy,
    *,
    attempt: int,
    max_attempts: int,
    created_at: float,
    now: float,
    rng: random.Random,
    retryable: bool = True,
    delay: float | None = None,
    throttles: int = 0,
    throttled: bool = False,
) -> tuple[str, float | None]:
    """The task's next state and run time after a failed attempt.

    `throttles` counts the earlier attempts that were flow control; they do not use up
    `max_attempts`. A throttled attempt (`throttled`) is retried until `max_throttles`.
    Returns (DEAD, None) when the failure is not retryable, attempts (or throttles) are
    used up, or the retry would land past `max_retry_duration_s`; otherwise
    (READY|SCHEDULED, run_at).
    """
    if not retryable:
        return DEAD, None
    if throttled:
        if throttles >= policy.max_throttles:
            return DEAD, None
        counted = throttles + 1
    else:
        counted = attempt - throttles
        if counted >= max_attempts:
            return DEAD, None
    wait = backoff_delay(policy, counted, rng) if delay is None else max(0.0, delay)
    run_at = now + wait
    if run_at - created_at > policy.max_retry_duration_s:
        return DEAD, None
    return (READY if wait <= 0 else SCHEDULED), run_at
