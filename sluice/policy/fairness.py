"""Tenant fairness inside a priority level: start-time fair queueing (DESIGN §6,
ALGORITHMS.md §4.2 (b); Goyal, Vin and Cheng, SIGCOMM 1996).

Each task gets a start tag when it becomes ready: `max(V, tenant's last tag) + cost /
weight`, where V, the virtual clock, is the largest tag dispatched so far. The store
orders a level's ready tasks by tag, so one index scan is fair: a tenant that queues
50,000 tasks has tags far ahead of V, and a tenant arriving later gets tags just past
V, which interleave with the head of the backlog at once. Weights split capacity: at
weight 3 a tenant's tags advance a third as fast, so it gets 3 dispatches to another's 1.

A tenant whose last tag has fallen behind V has no credit to save: its next task starts
from V like a newcomer's, so idling does not buy a burst later. That is also why the
per-tenant state can be forgotten once V passes it (`prune`), which bounds memory by the
number of tenants with work ahead of V.

Pure and deterministic: no clock, no randomness. The node owns one and moves V forward
from its own claims and from the store (other nodes' claims).
"""

from __future__ import annotations

from collections.abc import Mapping

COST = 1.0  # every task costs the same; the unit is arbitrary, only the order matters


class StartTags:
    def __init__(self, vclock: float = 0.0, cost: float = COST) -> None:
        if cost <= 0:
            raise ValueError("cost must be positive")
        self.vclock = vclock
        self.cost = cost
        self._last: dict[str, float] = {}

    def tags(self, tenant: str, n: int, weight: float = 1.0) -> list[float]:
        """Start tags for `n` tasks of a tenant that become ready together, in order."""
        if weight <= 0:
            raise ValueError("weight must be positive")
        step = self.cost / weight
        start = max(self.vclock, self._last.get(tenant, self.vclock))
        out = [start + step * (i + 1) for i in range(n)]
        if out:
            self._last[tenant] = out[-1]
        return out

    def tag_many(self, tenants: list[str], weights: Mapping[str, float]) -> list[float]:
        """One tag per entry of `tenants` (a tenant may appear many times), each in the
        order given, as for a batch of tasks promoted together."""
        out = []
        for tenant in tenants:
            out.extend(self.tags(tenant, 1, weights.get(tenant, 1.0)))
        return out

    def dispatched(self, tag: float) -> None:
        """A task with this tag was dispatched (here or, as read from the store, on
        another node): V only moves forward."""
        if tag > self.vclock:
            self.vclock = tag

    def seed(self, tenant: str, last: float) -> None:
        """Go on from a tenant's last tag as found in the store (after a restart, or
        work queued through another node), so its backlog is not joined by a new chain."""
        if last > self._last.get(tenant, self.vclock):
            self._last[tenant] = last

    def last(self, tenant: str) -> float:
        return self._last.get(tenant, self.vclock)

    def prune(self) -> int:
        """Forget tenants whose last tag V has passed; they would start from V anyway."""
        stale = [t for t, tag in self._last.items() if tag <= self.vclock]
        for tenant in stale:
            del self._last[tenant]
        return len(stale)

    def __len__(self) -> int:
        return len(self._last)
