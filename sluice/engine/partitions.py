"""Shuffle sharding, wired (DESIGN §5 "Multi-node", §6; the policy is policy/sharding.py).

Placement: at submit, each task goes to the less backlogged of its tenant's k
partitions, as this node last counted them (once a second) plus what it placed since, so
a burst spreads instead of following a stale count. A hot tenant's new tasks go to a
dedicated partition (numbered after the shared ones) until it cools down; tasks already
placed stay where they are.

Ownership: each partition is dispatched by one node, the holder of the lease
"part:N". The node for a partition is the highest rendezvous score among the live nodes
(those renewing a "node:ID" lease), so every node computes the same map without talking
and a node joining or leaving moves about 1/N of them. A node gives up the partitions
it should no longer hold and takes those it should, when their leases are free or have
run out (`partition_ttl_s` after a dead node's last renewal). A node dispatches only
the partitions it holds: to its own workers directly, and to other nodes' workers when
they ask (engine/asks.py). With one node it holds them all and claims with no filter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ..model import SHARED
from ..policy.sharding import HotTenants, choose, dedicated, owners, shards, spread
from .runtime import Runtime

log = logging.getLogger("sluice.partitions")
NODE = "node:"
PART = "part:"
HOT_CANDIDATES = 8  # heaviest submitters looked at, every HOT_EVERY_S
HOT_EVERY_S = 5.0  # at most; against hysteresis of a minute, each look counts a backlog
# Each look counts its tenants' backlogs through the ready index: a tenant a million deep
# takes a reader a third of a second. As backpressure's count (engine/backpressure.py), a
# look waits LOOK_AFTER times as long as the last one took, but never past a quarter of
# hot_for_s (so a tenant hot that long is still seen hot in time), and never less than
# the usual interval after the last one ended.
LOOK_AFTER = 20.0
SHARDS_CACHED = 100_000  # tenants whose partitions are remembered (cleared when full)


class HeavyHitters(Protocol):
    """The heaviest submitters, as backpressure's sample and hold finds them."""

    held: dict[str, float]


class Partitions:
    def __init__(self, rt: Runtime, changed: Callable[[], None], heavy: HeavyHitters) -> None:
        """`changed()`: which partitions are this node's moved (the dispatcher looks
        again); `heavy`: who submits most, the candidates for hot tenants."""
        self._rt = rt
        self._changed = changed
        self._heavy = heavy
        settings = rt.settings
        self.shared = settings.partitions
        self.total = settings.partitions + settings.dedicated_partitions
        self.k = settings.partition_k
        self.owned: frozenset[int] = frozenset()
        self.owners: dict[int, str] = {}  # partition: the node holding it
        self.others: tuple[str, ...] = ()  # other nodes holding partitions
        self.backlog: dict[int, int] = {}  # ready tasks per partition, and placed since
        self.hot = HotTenants(settings.hot_for_s, settings.cool_for_s)
        self._filter: tuple[int, ...] | None = None
        self._shards: dict[str, list[int]] = {}
        self._look_at = float("-inf")  # monotonic
        self._look_every = min(HOT_EVERY_S, settings.hot_for_s / 4, settings.cool_for_s / 4)
        self._look_stale = max(self._look_every, settings.hot_for_s / 4)

    @property
    def claim_filter(self) -> tuple[int, ...] | None:
        """The partitions this node's claims take from; None: all of them."""
        return self._filter

    def others_for(self, tenant_id: str) -> tuple[str, ...]:
        """Other nodes holding partitions this tenant's tasks go to: its k shared ones and
        its dedicated one (SHARED, a shared pool: every tenant's, so all of them)."""
        if not self.others:
            return ()
        if tenant_id == SHARED:
            return self.others
        mine = self._shards.get(tenant_id) or shards(tenant_id, self.shared, self.k)
        parts = list(mine)
        if self.total > self.shared:
            parts.append(dedicated(tenant_id, self.shared, self.total - self.shared))
        me = self._rt.node_id
        return tuple(sorted({n for p in parts if (n := self.owners.get(p)) and n != me}))

    def place(self, tenant_id: str, n: int) -> list[int]:
        """Partitions for a tenant's next n tasks."""
        if tenant_id in self.hot.hot and self.total > self.shared:
            return [dedicated(tenant_id, self.shared, self.total - self.shared)] * n
        mine = self._shards.get(tenant_id)
        if mine is None:
            if len(self._shards) >= SHARDS_CACHED:
                self._shards.clear()
            mine = self._shards[tenant_id] = shards(tenant_id, self.shared, self.k)
        backlog = self.backlog
        if n == 1:  # a single submit: the common case
            p = choose(mine, backlog)
            backlog[p] = backlog.get(p, 0) + 1
            return [p]
        out: list[int] = []
        for p, count in spread(mine, backlog, n).items():
            backlog[p] = backlog.get(p, 0) + count
            out += [p] * count
        return out

    def observe(self, backlog: dict[int, int]) -> None:
        """A fresh count of ready tasks per partition (backpressure reads it each second)."""
        self.backlog = dict(backlog)

    async def find_hot(self) -> None:
        """Every few seconds (its own loop, so a slow count never delays a renewal)."""
        await self._find_hot()

    async def balance(self) -> None:
        rt = self._rt
        store, me = rt.store, rt.node_id
        ttl = rt.settings.partition_ttl_s
        # The leases run on the database's clock, not this node's (store/base.py): a node
        # whose clock is off must not see the others' leases run out, nor keep its own.
        await store.acquire_lease(NODE + me, me, ttl)
        live = {holder for _name, holder, _until in await store.list_leases(NODE)} | {me}
        mine = {p for p, n in owners(live, self.total).items() if n == me}
        for p in sorted(self.owned - mine):  # its node is back or new: hand it over
            await store.release_lease(f"{PART}{p}", me)
        granted = await store.acquire_leases([f"{PART}{p}" for p in mine], me, ttl)
        owned = frozenset(int(name.removeprefix(PART)) for name in granted)
        held = {
            int(name.removeprefix(PART)): holder
            for name, holder, _until in await store.list_leases(PART)
        }
        held.update({p: me for p in owned})
        for p in self.owned - owned:
            if held.get(p) == me:
                del held[p]  # released above
        if owned != self.owned:
            log.info(
                "node %s dispatches %d of %d partitions (%d shared, %d for hot tenants)",
                me, len(owned), self.total, self.shared, self.total - self.shared,
            )  # fmt: skip
        changed = owned != self.owned or held != self.owners
        self.owned, self.owners = owned, held
        self.others = tuple(sorted(set(held.values()) - {me}))
        self._filter = None if len(owned) == self.total else tuple(sorted(owned))
        if changed:
            self._changed()

    async def release(self) -> None:
        """On a clean stop: hand every partition over at once."""
        rt = self._rt
        me = rt.node_id
        self.owned, self._filter = frozenset(), ()
        for name, holder, _until in await rt.store.list_leases(PART):
            if holder == me:
                await rt.store.release_lease(name, me)
        await rt.store.release_lease(NODE + me, me)

    async def _find_hot(self) -> None:
        """Hot tenants (ALGORITHMS.md §3.4): the heaviest submitters (sample and hold
        names them, so the cost does not grow with the tenants) and the hot ones, looked
        up by their backlog per partition."""
        rt = self._rt
        began = rt.clock.monotonic()
        if self.total == self.shared or began < self._look_at:
            return
        held = self._heavy.held
        heavy = sorted(held, key=lambda t: -held[t])[:HOT_CANDIDATES]
        looked = {}
        try:
            for tenant_id in {*heavy, *self.hot.hot}:
                looked[tenant_id] = await rt.store.tenant_backlog(tenant_id)
        finally:  # a look that failed (a count that timed out) is spaced out too
            took = rt.clock.monotonic() - began
            wait = min(LOOK_AFTER * took, self._look_stale)
            self._look_at = began + max(wait, took + self._look_every)
        now = rt.clock.now()
        before = set(self.hot.hot)
        after = self.hot.observe(now, looked, self.backlog)
        for tenant_id in after - before:
            log.info("tenant %s is hot: its new tasks go to a partition of its own", tenant_id)
        for tenant_id in before - after:
            log.info("tenant %s cooled down: back to its shared partitions", tenant_id)
