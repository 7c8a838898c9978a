"""What a limited claim decides, shared by both backends: how many tasks a function
may start now under its concurrency cap and its rate (policy/gcra.py)."""

from __future__ import annotations

from ..policy import gcra


def room(
    limit: int,
    running: int | None,
    max_concurrency: int | None,
    tat: float | None,
    now: float,
    rate: float | None,
    burst: int,
) -> tuple[int, bool]:
    """(how many may start now, whether the rate is what held the claim back)."""
    want = limit
    if max_concurrency is not None and running is not None:
        want = min(want, max(0, max_concurrency - running))
    if rate is not None:
        tokens = gcra.allowed(tat or 0.0, now, rate, burst)
        if tokens < want:
            return tokens, True
    return want, False


def after(
    tat: float | None, now: float, rate: float, burst: int, taken: int
) -> tuple[float, float]:
    """(the new state, when the next start is allowed)."""
    new = gcra.advance(tat or 0.0, now, rate, taken)
    return new, new - (burst - 1) / rate
