"""Headroom on a shared pool: a free slot kept for the tenants that hold less than
their share, so a quiet tenant's task starts when it arrives, not when a flood's task
ends.

Fair order (policy/fairness.py) decides who goes first *among ready tasks*. A quiet
tenant's task that arrives while a flood holds every slot is first in line, but it
still waits for a slot to free: up to a whole task's run time. When the flood's tasks
started together (a batch claimed at once), they also end together, and the wait is
the run time itself: with 10 ms tasks, p99 went from 5 ms alone to 18 ms beside a
flood (bench/RESULTS.md, make bench's noisy neighbour). Kubernetes' API Priority and
Fairness faces the same (a seat is held until its request ends) and answers with
seats set apart per level; a pool has no levels, so it sets apart by holding:

- While the pool has run tasks of more than one tenant in the last `window_s`
  seconds (or runs them now), each worker's claims stop short of full, in fair order,
  by `headroom` slots per tenant that runs less than its share of the worker's slots
  (slots / active tenants), at most a quarter of the slots; and there is no prefetch
  beyond the slots.
- Those last slots go only to the tenants below their share (weighted as their fair
  tags are): a claim for them names the others, not the *heavy* ones. Two quiet tenants
  that submit at the same moment both start. Heavy tenants only (two floods at their
  shares) share every slot.
- A tenant alone on the pool gets every slot: no capacity is held for a tenant that is
  not there. A worker of fewer than 4 slots keeps none. (The dispatcher counts a flood
  new to the pool as a second tenant when another is idle there, so its first claim
  keeps the headroom too.)

The price is those slots idle while a heavy tenant has a backlog and quiet ones are
around: 2 of 8 in the benchmark. Pure: the caller passes the counts and the clock's
time.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping

WINDOW_S = 30.0  # a tenant counts as active this long after the pool last ran its task


class Active:
    """Tenants a pool ran a task of within the last `window_s` seconds: a move to the
    end on each sight and expiry from the front, so each sight and count is O(1)
    amortized, whatever the number of tenants."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._seen: OrderedDict[str, float] = OrderedDict()

    def saw(self, tenants: Iterable[str], now: float) -> None:
        for tenant in tenants:
            self._seen[tenant] = now
            self._seen.move_to_end(tenant)

    def seen(self) -> list[str]:
        """The tenants seen, oldest sight first (expired ones included until the next
        `tenants`)."""
        return list(self._seen)

    def tenants(self, now: float) -> OrderedDict[str, float]:
        """The tenants seen within the window, oldest sight first."""
        while self._seen:
            tenant, at = next(iter(self._seen.items()))
            if now - at <= self.window_s:
                break
            del self._seen[tenant]
        return self._seen


def plan(
    slots: int,
    free: int,
    running: Counter[str],
    active: int,
    headroom: int,
    weights: Mapping[str, float] | None = None,
    total_weight: float | None = None,
) -> tuple[int, frozenset[str]] | None:
    """How a shared pool's worker claims now: None to claim as always (prefetch
    included); else (at most this many tasks, the tenants to leave out).

    `free`: its slots not running or promised a task (prefetch not counted);
    `running`: its tasks per tenant; `active`: tenants active on the pool, those
    running here included; `headroom`: slots kept per tenant below its share. A
    tenant's share is the slots times its weight over `total_weight`, the active
    tenants' weights (1 each, unless `weights` says otherwise)."""
    if headroom <= 0 or active < 2:
        return None
    weights = weights or {}
    total = total_weight if total_weight is not None else float(active)
    heavy = frozenset(t for t, n in running.items() if n >= slots * weights.get(t, 1.0) / total)
    if len(heavy) >= active:
        return None  # nobody else to keep a slot for
    keep = min(headroom * (active - len(heavy)), slots // 4)
    if keep <= 0:
        return None
    free = max(0, free)
    if free > keep:
        # Anyone, in fair order (a quiet tenant's tasks come first by their tags), up to
        # the headroom.
        return free - keep, frozenset()
    return free, heavy
