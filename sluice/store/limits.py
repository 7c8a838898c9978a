"""What a limited claim decides, shared by both backends: how many tasks may start now
under every limit that applies (a function's, a tenant's), each a concurrency cap and a
rate (policy/gcra.py)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..policy import gcra


class Limit(msgspec.Struct, frozen=True):
    """One limit a claim must respect, cluster-wide. `key` names its rate state
    ("tenant:function", or "tenant:*" for the whole tenant); running tasks are counted
    for the tenant's `function`, or all its functions when None."""

    key: str
    function: str | None = None
    rate: float | None = None
    burst: int = 1
    max_concurrency: int | None = None
    settling: tuple[str, ...] = ()
    """Ids of running tasks whose finishes the caller is writing: not counted against
    the cap (whether or not their finish has committed yet)."""
    pool: bool = False
    """A shared pool function's own limit: running tasks of `function` are counted on
    every shared pool's workers, whatever their tenant."""


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


def room_all(
    limit: int,
    limits: Sequence[Limit],
    running: Sequence[int | None],
    tats: Sequence[float | None],
    now: float,
) -> tuple[int, bool]:
    """The tightest of every limit's room, and whether a rate set it."""
    want, by_rate = limit, False
    for lim, run, tat in zip(limits, running, tats, strict=True):
        n, rated = room(want, run, lim.max_concurrency, tat, now, lim.rate, lim.burst)
        if n < want:
            want, by_rate = n, rated
    return want, by_rate


def after(
    tat: float | None, now: float, rate: float, burst: int, taken: int
) -> tuple[float, float]:
    """(the new state, when the next start is allowed)."""
    new = gcra.advance(tat or 0.0, now, rate, taken)
    return new, new - (burst - 1) * gcra.interval(rate)


def after_all(
    limits: Sequence[Limit], tats: Sequence[float | None], now: float, taken: int
) -> tuple[list[tuple[str, float]], float | None]:
    """(each rate key's new state, the time the tightest rate next allows a start)."""
    states, next_start = [], None
    for lim, tat in zip(limits, tats, strict=True):
        if lim.rate is None:
            continue
        new, allowed = after(tat, now, lim.rate, lim.burst, taken)
        states.append((lim.key, new))
        next_start = allowed if next_start is None else max(next_start, allowed)
    return states, next_start
