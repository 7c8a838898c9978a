"""The dispatcher: leases ready tasks to free worker slots, woken rather than polled.

A round claims, for every connected worker with free slots, up to that many tasks of
its tenant and functions, all in one store commit, then pushes them. Which priority
levels fill the slots is decided per (tenant, functions) queue by `PriorityFloors`
(policy/priority.py): strict order, except the floor shares owed to lower levels,
claimed from those levels by name. Claims never
exceed free slots, so there is no prefetch. A (tenant, functions) pair that came back
short is remembered as empty until that tenant's next submit, promotion or requeue,
so idle workers cost no queries; a slow poll is the safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from ..clock import Clock
from ..config import Settings
from ..model import ClaimedTask
from ..policy.priority import PriorityFloors
from ..store import ClaimRequest, Store
from ..store.bus import Bus, LocalBus
from .registry import Registry, WorkerConn

log = logging.getLogger("sluice.dispatcher")


class Dispatcher:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        clock: Clock,
        settings: Settings,
        bus: Bus | None = None,
    ) -> None:
        self._store = store
        self._bus: Bus = bus or LocalBus()
        self._registry = registry
        self._clock = clock
        self._settings = settings
        self._wake = asyncio.Event()
        self._generation: defaultdict[str, int] = defaultdict(int)
        self._empty: dict[tuple[str, tuple[str, ...]], int] = {}
        # Per queue: its floors, and the tenant generation they last saw.
        self._floors: dict[tuple[str, tuple[str, ...]], tuple[PriorityFloors, int]] = {}
        self.rounds = 0
        self.dispatched = 0

    def notify(self, tenant_id: str) -> None:
        """New ready work for a tenant: this node's workers, and other nodes' by the bus."""
        self.hint(tenant_id)
        self._bus.publish("ready", tenant_id)

    def hint(self, tenant_id: str) -> None:
        """New ready work for a tenant, as heard from another node."""
        self._generation[tenant_id] += 1
        self._wake.set()

    def resync(self) -> None:
        """Hints may have been missed: look at every worker's queue again."""
        self._empty.clear()
        self._wake.set()

    def wake(self) -> None:
        """Slots were freed or a worker connected."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_s)
            except TimeoutError:
                self._empty.clear()  # the safety net: look again even without a wake-up
            self._wake.clear()
            try:
                await self.dispatch_round()
            except Exception:
                log.exception("dispatch round failed")
                await asyncio.sleep(0.1)

    async def dispatch_round(self) -> int:
        """Claim and deliver once; returns how many tasks were dispatched."""
        requests: list[ClaimRequest] = []
        owners: list[tuple[WorkerConn, PriorityFloors]] = []
        asked: dict[int, int] = {}  # id(conn) -> slots asked in this round
        silent_since = self._clock.now() - 2 * self._settings.heartbeat_s
        for conn in self._registry.dispatchable(silent_since):
            key = (conn.tenant_id, conn.functions)
            generation = self._generation[conn.tenant_id]
            if self._empty.get(key) == generation:
                continue
            floors = self._floors_of(key, generation)
            limit = min(conn.free, self._settings.claim_batch)
            for level, n in floors.plan(limit):
                requests.append(
                    ClaimRequest(conn.tenant_id, conn.worker_id, conn.functions, n, level)
                )
                owners.append((conn, floors))
            asked[id(conn)] = limit
            conn.reserved += limit  # a concurrent round must not count these slots again
        if not requests:
            return 0
        self.rounds += 1
        now = self._clock.now()
        conns = {id(c): c for c, _ in owners}
        try:
            claimed = await self._store.claim_tasks(requests, now, self._settings.lease_s)
        finally:
            for conn_id, limit in asked.items():
                conns[conn_id].reserved -= limit
        got: dict[int, list[ClaimedTask]] = {}
        for (conn, floors), request, tasks in zip(owners, requests, claimed, strict=True):
            floors.claimed(request.priority, request.limit, len(tasks))
            if request.priority is None and len(tasks) < request.limit:
                key = (conn.tenant_id, conn.functions)
                self._empty[key] = self._floors[key][1]
            got.setdefault(id(conn), []).extend(tasks)
        total = 0
        for conn_id, tasks in got.items():
            conn = conns[conn_id]
            if not tasks:
                continue
            if conn.closed or self._registry.get(conn.tenant_id, conn.worker_id) is not conn:
                # The worker left while the claim committed: give the tasks straight back.
                held = [(t.id, t.attempt) for t in tasks]
                await self._store.release_tasks(conn.tenant_id, conn.worker_id, held, now)
                self.notify(conn.tenant_id)
                continue
            total += len(tasks)
            conn.deliver(tasks)
        self.dispatched += total
        if total:
            self._wake.set()  # workers may still have free slots and the queue more work
        return total

    def _floors_of(self, key: tuple[str, tuple[str, ...]], generation: int) -> PriorityFloors:
        found = self._floors.get(key)
        if found is None:
            floors = PriorityFloors()
        else:
            floors, seen = found
            if seen != generation:
                floors.refresh()  # new ready work: any level may hold some again
        self._floors[key] = (floors, generation)
        return floors
