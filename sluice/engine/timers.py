"""Timers: delayed-task promotion, cron, lease renewal, the reaper, expiry and retention.

In a cluster the timers that scan the whole store (promotion, cron, expiry, the
reaper, retention) run on one node at a time, the holder of the "timers" lease in the store
(LEADER_TTL_S, renewed every LEADER_RENEW_S); if that node dies another takes over once
the lease runs out. Every node renews the leases of its own workers and fires its own
in-memory heap; a double promotion is harmless (the store checks the state).

Delayed tasks live in the store's time index; every `promote_interval_s` the due ones
become ready in batches. Tasks due within `timer_horizon_s` are also held in a small
in-memory heap and promoted at their exact time, so a sub-second delay is on time.
Losing the heap (a crash) only falls back to the interval's precision.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from typing import TYPE_CHECKING

from ..store import LeaseRenewal, Promoted

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("sluice.timers")

PROMOTE_BATCH = 5000
HEAP_LOAD_LIMIT = 10_000
REAP_BATCH = 1000
PURGE_BATCH = 1000
LEADER_LEASE = "timers"
LEADER_TTL_S = 10.0
LEADER_RENEW_S = 2.0
CRON_INTERVAL_S = 1.0
FAIR_SYNC_S = 1.0  # how far one node's fair clock may lag the cluster's


class Timers:
    def __init__(self, node: Node) -> None:
        self._node = node
        self._heap: list[tuple[float, str, str]] = []
        self._in_heap: set[str] = set()
        self._heap_changed = asyncio.Event()
        self.leader = False

    def schedule(self, run_at: float, tenant_id: str, task_id: str) -> None:
        """Hold a just-submitted delayed task in memory if it is due within the horizon."""
        node = self._node
        if run_at > node.clock.now() + node.settings.timer_horizon_s or task_id in self._in_heap:
            return
        self._in_heap.add(task_id)
        heapq.heappush(self._heap, (run_at, tenant_id, task_id))
        if self._heap[0][2] == task_id:
            self._heap_changed.set()

    async def run(self) -> None:
        with contextlib.suppress(Exception):
            await self.lead_once()  # before the first tick, so a lone node starts as leader
        await asyncio.gather(
            self._every(LEADER_RENEW_S, self.lead_once),
            self._every(self._node.settings.promote_interval_s, self.promote_once, lead=True),
            self._every(
                min(CRON_INTERVAL_S, self._node.settings.promote_interval_s),
                self._node.schedules.tick,
                lead=True,
            ),
            self._every(self._node.settings.heartbeat_s, self.renew_once),
            self._every(FAIR_SYNC_S, self._node.fairness.sync),  # every node: its own clock
            self._every(1.0, self._node.backpressure.tick),  # every node: its producers
            # every node: its partition leases (a third of their lifetime), hot tenants
            self._every(
                self._node.settings.partition_ttl_s / 3,
                self._node.partitions.balance,
                first_after=self._node.settings.partition_ttl_s / 3,
            ),
            self._every(1.0, self._node.partitions.find_hot, first_after=1.0),
            # Not at once: workers held tasks while this node was down and need a moment to
            # reconnect and renew their leases before any is judged lost.
            self._every(
                self._node.settings.reap_interval_s,
                self.reap_once,
                first_after=self._node.settings.lease_s,
                lead=True,
            ),
            self._every(self._node.settings.purge_interval_s, self.purge_once, lead=True),
            self._every(
                self._node.settings.purge_interval_s, self._node.audit.purge_once, lead=True
            ),
            self._fire_heap(),
        )

    async def _every(
        self, interval: float, tick: object, first_after: float = 0.0, lead: bool = False
    ) -> None:
        assert callable(tick)
        if first_after:
            await asyncio.sleep(first_after)
        while True:
            try:
                if self.leader or not lead:
                    await tick()
            except Exception:
                log.exception("timer %s failed", getattr(tick, "__name__", tick))
            await asyncio.sleep(interval)

    async def lead_once(self) -> None:
        node = self._node
        held = False  # on an error, step down: the lease runs out for everyone alike
        try:
            # On the database's clock: a node whose own clock is off neither takes the
            # lease from a live leader nor keeps it past its end (store/base.py).
            held = await node.store.acquire_lease(LEADER_LEASE, node.node_id, LEADER_TTL_S)
        finally:
            if held != self.leader:
                log.info("node %s %s the timers", node.node_id, "runs" if held else "stops")
            self.leader = held

    async def step_down(self) -> None:
        """Hand the timers lease back on a clean stop, so another node takes over at
        its next try instead of after the lease runs out."""
        if self.leader:
            node = self._node
            self.leader = False
            await node.store.release_lease(LEADER_LEASE, node.node_id)

    async def promote_once(self) -> int:
        node = self._node
        total = 0
        while True:
            now = node.clock.now()
            promoted = await node.store.promote_due(now, PROMOTE_BATCH)
            total += len(promoted)
            await _tag_and_notify(node, promoted)
            if len(promoted) < PROMOTE_BATCH:
                break
        expired = await node.store.expire_tasks(node.clock.now(), PROMOTE_BATCH)
        node.expired(expired)
        horizon = node.clock.now() + node.settings.timer_horizon_s
        for run_at, tenant_id, task_id in await node.store.due_soon(horizon, HEAP_LOAD_LIMIT):
            self.schedule(run_at, tenant_id, task_id)
        return total

    async def purge_once(self) -> int:
        """Retention: drop ended tasks older than `retention_s`, a batch per commit."""
        node = self._node
        before = node.clock.now() - node.settings.retention_s
        total = 0
        while True:
            purged = await node.store.purge_tasks(before, PURGE_BATCH)
            total += purged
            if purged < PURGE_BATCH:
                return total

    async def renew_once(self) -> None:
        node = self._node
        now = node.clock.now()
        stale_after = 2 * node.settings.heartbeat_s
        renewals = [
            LeaseRenewal(c.tenant_id, c.worker_id, tuple(c.inflight))
            for c in node.registry
            if c.inflight and now - c.last_seen <= stale_after
        ]
        await node.store.extend_leases(renewals, now + node.settings.lease_s)

    async def reap_once(self) -> int:
        node = self._node
        total = 0
        while True:
            reaped = await node.store.reap_leases(node.clock.now(), REAP_BATCH)
            await node.hold_requeued(reaped)  # before any dispatcher hears of them
            for r in reaped:
                log.warning("lease lost: task %s is %s again", r.task_id, r.state)
                node.dispatcher.notify(r.tenant_id)
            node.reaped(reaped)
            total += len(reaped)
            if len(reaped) < REAP_BATCH:
                return total

    async def _fire_heap(self) -> None:
        node = self._node
        while True:
            if not self._heap:
                self._heap_changed.clear()
                await self._heap_changed.wait()
                continue
            wait = self._heap[0][0] - node.clock.now()
            if wait > 0:
                self._heap_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._heap_changed.wait(), wait)
                continue
            now = node.clock.now()
            due = []
            while self._heap and self._heap[0][0] <= now:
                _, _tenant, task_id = heapq.heappop(self._heap)
                self._in_heap.discard(task_id)
                due.append(task_id)
            try:
                promoted = await node.store.promote_tasks(due, now)
            except Exception:
                log.exception("promoting %d due tasks failed; the interval will", len(due))
                continue
            await _tag_and_notify(node, promoted)


async def _tag_and_notify(node: Node, promoted: list[Promoted]) -> None:
    """Fair tags for tasks that just became ready, then wake the dispatcher for them;
    ready they are either way, so a failed retag must not keep them unseen."""
    try:
        await node.fairness.promoted(promoted)
    except Exception:
        log.exception(
            "tagging %d promoted tasks failed; they keep their submit tags", len(promoted)
        )
    finally:
        _notify(node, promoted)


def _notify(node: Node, promoted: list[Promoted]) -> None:
    """Tell the dispatcher which tenants, levels and functions got ready work."""
    by_tenant: dict[str, tuple[set[int], set[str]]] = {}
    for p in promoted:
        levels, functions = by_tenant.setdefault(p.tenant_id, (set(), set()))
        levels.add(p.priority)
        functions.add(p.function)
    for tenant_id, (levels, functions) in by_tenant.items():
        node.dispatcher.notify(tenant_id, levels, functions)
