"""GCRA, the generic cell rate algorithm (ALGORITHMS.md §5): a rate limit as one number.

A limit of `rate` tasks per second with a `burst` allows, in any window of t seconds,
at most `burst + rate * t` starts. State is the theoretical arrival time `tat`: the time
at which the limit would be back to empty if nothing more started. Taking k starts at
`now` is allowed while `max(tat, now) + k / rate - burst / rate <= now`. Pure: the
store keeps `tat` per key and passes `now` (its clock, shared by every node).
"""

from __future__ import annotations

import math

from ..model import MIN_RATE


def interval(rate: float) -> float:
    """Seconds between starts at `rate`. A rate below MIN_RATE (one stored before the
    contract refused it) counts as MIN_RATE: 1 / 5e-324 is infinite, and one limit's
    NaN would fail every claim of the dispatch round it is in."""
    return 1.0 / max(rate, MIN_RATE)


def allowed(tat: float, now: float, rate: float, burst: int) -> int:
    """How many starts may happen at `now`."""
    interval_s = interval(rate)
    room = now + burst * interval_s - max(tat, now)
    # Epoch seconds carry about 0.2 µs of float error: forgive a thousandth of a token.
    return max(0, math.floor(room / interval_s + 1e-3))


def advance(tat: float, now: float, rate: float, taken: int) -> float:
    """The state after `taken` starts at `now`."""
    return max(tat, now) + taken * interval(rate)
