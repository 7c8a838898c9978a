"""Shuffle sharding (DESIGN §6, ALGORITHMS.md §3): each tenant on k of P partitions by
rendezvous (highest random weight) hashing, each task to the less backlogged of them,
and hot tenants moved to partitions of their own with hysteresis.

With P = 32 and k = 2 there are C(32, 2) = 496 pairs: a tenant shares both of its
partitions with about 0.2 % of the others, so a partition that is poisoned or flooded
hurts 2/32 of the tenants a little (one of their two partitions) and almost none of
them fully. `blast_radius` computes the table; `simulate_stall` checks it by counting.

Pure and deterministic: blake2b with a seed (never `hash()`), the time passed in.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

PARTITIONS = 32
K = 2
SEED = b"sluice-shards-v1"
HOT_SHARE = 0.10  # of a partition's backlog
HOT_MIN = 1_000  # tasks
HOT_FOR_S = 60.0
COOL_BELOW = 100
COOL_FOR_S = 900.0


def _score(seed: bytes, tenant: str, partition: int) -> int:
    digest = hashlib.blake2b(
        tenant.encode() + b"\x00" + partition.to_bytes(4, "big"), key=seed, digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


def shards(tenant: str, partitions: int = PARTITIONS, k: int = K, seed: bytes = SEED) -> list[int]:
    """The tenant's k partitions: the k highest scores. Adding a partition moves only
    the tenants that now score highest on it (rendezvous hashing's minimal disruption)."""
    ranked = sorted(range(partitions), key=lambda p: _score(seed, tenant, p), reverse=True)
    return sorted(ranked[:k])


def choose(candidates: list[int], backlog: Mapping[int, int]) -> int:
    """The less backlogged of a tenant's partitions (ties: the lower number)."""
    return min(candidates, key=lambda p: (backlog.get(p, 0), p))


def spread(candidates: list[int], backlog: Mapping[int, int], n: int) -> dict[int, int]:
    """How many of n tasks each partition gets when each task in turn goes to the less
    backlogged (`choose`, counting the ones placed before it), computed at once: fill the
    lowest partitions up to the next one's level, and so on (water-filling)."""
    order = sorted(candidates, key=lambda p: (backlog.get(p, 0), p))
    base = [backlog.get(p, 0) for p in order]
    counts = [0] * len(order)
    height, group = base[0], 1  # the lowest `group` partitions are all at `height`
    while n > 0:
        while group < len(order) and base[group] <= height:
            group += 1
        room = (base[group] - height) * group if group < len(order) else n
        if n >= room and group < len(order):
            for j in range(group):
                counts[j] += base[group] - height
            n -= room
            height = base[group]
            continue
        each, extra = divmod(n, group)
        firsts = set(sorted(order[:group])[:extra])  # ties go to the lower number
        for j in range(group):
            counts[j] += each + (order[j] in firsts)
        n = 0
    return {p: c for p, c in zip(order, counts, strict=True) if c}


def blast_radius(partitions: int, k: int) -> dict[str, float]:
    """For one failed partition: the share of tenants that touch it (k/P), and the share
    of other tenants that share all k partitions with a given tenant (1 / C(P, k))."""
    return {
        "touching_one_failed": k / partitions,
        "sharing_all_with_one_tenant": 1 / math.comb(partitions, k),
    }


def simulate_stall(
    tenants: int, partitions: int, k: int, stalled: set[int], seed: bytes = SEED
) -> dict[str, float]:
    """Tenants whose every partition is stalled (cannot run at all) and those with at
    least one stalled (their new tasks go to the other); counted, not computed."""
    all_stalled = one_stalled = 0
    for i in range(tenants):
        mine = set(shards(f"tenant-{i}", partitions, k, seed))
        hit = mine & stalled
        all_stalled += hit == mine
        one_stalled += bool(hit)
    return {"all_stalled": all_stalled / tenants, "some_stalled": one_stalled / tenants}


def dedicated(tenant: str, first: int, count: int, seed: bytes = SEED) -> int:
    """A hot tenant's own partition: one of the `count` numbered from `first`, by the same
    rendezvous hashing (two hot tenants may share one; both are off the shared ones)."""
    return first + shards(tenant, count, 1, seed)[0]


def owners(nodes: Iterable[str], partitions: int, seed: bytes = SEED) -> dict[int, str]:
    """Which live node dispatches each partition: the highest score of (node, partition).
    Every node computes the same map from the same set of live nodes, with no talk
    between them; a node joining or leaving moves only about 1/N of the partitions."""
    alive = sorted(set(nodes))
    if not alive:
        return {}
    return {p: max(alive, key=lambda n: (_score(seed, n, p), n)) for p in range(partitions)}


class HotTenants:
    """Which tenants get partitions of their own: hot after holding > 10 % of a
    partition's backlog and ≥ 1,000 tasks there for 60 s; back to shared after a backlog
    < 100 for 15 minutes (hysteresis, so a tenant does not flap)."""

    def __init__(self, hot_for_s: float = HOT_FOR_S, cool_for_s: float = COOL_FOR_S) -> None:
        self.hot_for_s = hot_for_s
        self.cool_for_s = cool_for_s
        self.hot: set[str] = set()
        self._since: dict[str, float] = {}  # when the current condition started

    def observe(
        self,
        now: float,
        tenants: Mapping[str, Mapping[int, int]],
        partitions: Mapping[int, int],
    ) -> set[str]:
        """Feed one observation: the backlog per partition of each tenant looked at (the
        heavy hitters and the hot ones), and every partition's backlog. Returns the
        tenants that are hot now. A tenant not looked at keeps its state."""
        for tenant, mine in tenants.items():
            if tenant in self.hot:
                if sum(mine.values()) >= COOL_BELOW:
                    self._since.pop(tenant, None)
                elif now - self._since.setdefault(tenant, now) >= self.cool_for_s:
                    self.hot.discard(tenant)
                    self._since.pop(tenant, None)
                continue
            heavy = any(
                n >= HOT_MIN and n > HOT_SHARE * max(1, partitions.get(p, 0))
                for p, n in mine.items()
            )
            if not heavy:
                self._since.pop(tenant, None)
            elif now - self._since.setdefault(tenant, now) >= self.hot_for_s:
                self.hot.add(tenant)
                self._since.pop(tenant, None)
        return set(self.hot)
