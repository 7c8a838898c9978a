"""The dispatcher: leases ready tasks to free worker slots, woken rather than polled.

A round claims, for every connected worker with free slots, up to that many tasks of
its tenant and functions, all in one store commit, then pushes them. Claims never
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
from ..store import ClaimRequest, Store
from ..store.bus import Bus, LocalBus
from .registry import Registry

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
        requests = []
        conns = []
        generations = []
        silent_since = self._clock.now() - 2 * self._settings.heartbeat_s
        for conn in self._registry.dispatchable(silent_since):
            key = (conn.tenant_id, conn.functions)
            generation = self._generation[conn.tenant_id]
            if self._empty.get(key) == generation:
                continue
            limit = min(conn.free, self._settings.claim_batch)
            requests.append(ClaimRequest(conn.tenant_id, conn.worker_id, conn.functions, limit))
            conns.append(conn)
            generations.append(generation)
            conn.reserved += limit  # a concurrent round must not count these slots again
        if not requests:
            return 0
        self.rounds += 1
        now = self._clock.now()
        try:
            claimed = await self._store.claim_tasks(requests, now, self._settings.lease_s)
        finally:
            for conn, request in zip(conns, requests, strict=True):
                conn.reserved -= request.limit
        total = 0
        for conn, request, generation, tasks in zip(
            conns, requests, generations, claimed, strict=True
        ):
            if len(tasks) < request.limit:
                self._empty[(conn.tenant_id, conn.functions)] = generation
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
