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
from collections.abc import Mapping

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


class HotTenants:
    """Which tenants get partitions of their own: hot after holding > 10 % of a
    partition's backlog and ≥ 1,000 tasks for 60 s; back to shared after < 100 for 15
    minutes (hysteresis, so a tenant does not flap)."""

    def __init__(self) -> None:
        self.hot: set[str] = set()
        self._since: dict[str, float] = {}  # when the current condition started

    def observe(self, now: float, backlog: Mapping[str, int], partition_backlog: int) -> set[str]:
        """Feed one observation of a partition (per-tenant backlog there, its total);
        returns the tenants that are hot now."""
        for tenant, n in backlog.items():
            if tenant in self.hot:
                cool = n < COOL_BELOW
                since = self._since.setdefault(tenant, now) if cool else None
                if not cool:
                    self._since.pop(tenant, None)
                elif since is not None and now - since >= COOL_FOR_S:
                    self.hot.discard(tenant)
                    self._since.pop(tenant, None)
            else:
                heavy = n >= HOT_MIN and n > HOT_SHARE * max(1, partition_backlog)
                if not heavy:
                    self._since.pop(tenant, None)
                    continue
                since = self._since.setdefault(tenant, now)
                if now - since >= HOT_FOR_S:
                    self.hot.add(tenant)
                    self._since.pop(tenant, None)
        return set(self.hot)
