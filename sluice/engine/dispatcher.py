"""The dispatcher: leases ready tasks to free worker slots, woken rather than polled.

A round claims, for every connected worker with free slots, up to that many tasks of
its tenant and functions, all in one store commit, then pushes them. Which priority
levels fill the slots is decided per (tenant, functions) queue by `PriorityFloors`
(policy/priority.py): strict order, except the floor shares owed to lower levels,
claimed from those levels by name. Functions with a rate or a concurrency limit are
claimed first, one store transaction each (store.claim_limited: cluster-wide GCRA and a
running count); when the rate holds tasks back, the dispatcher looks again the moment
the next start is allowed. The rest of the slots go to the worker's other functions. Claims never
exceed free slots, so there is no prefetch. A (tenant, functions) pair that came back
short is remembered as empty until that tenant's next submit, promotion or requeue,
so idle workers cost no queries; a slow poll is the safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from ..clock import Clock
from ..config import Settings
from ..model import ClaimedTask, FunctionConfig
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
        configs: Callable[[str], Mapping[str, FunctionConfig]] | None = None,
    ) -> None:
        self._store = store
        self._configs = configs or (lambda _tenant: {})
        self._bus: Bus = bus or LocalBus()
        self._registry = registry
        self._clock = clock
        self._settings = settings
        self._wake = asyncio.Event()
        self._generation: defaultdict[str, int] = defaultdict(int)
        self._empty: dict[tuple[str, tuple[str, ...]], int] = {}
        # Per queue: its floors, and the tenant generation they last saw.
        self._floors: dict[tuple[str, tuple[str, ...]], tuple[PriorityFloors, int]] = {}
        # Limited functions found without ready work, until work for them arrives.
        self._drained: dict[tuple[str, str], bool] = {}
        self.rounds = 0
        self.dispatched = 0

    def notify(
        self,
        tenant_id: str,
        levels: Iterable[int] | None = None,
        functions: Iterable[str] | None = None,
    ) -> None:
        """New ready work for a tenant (at these priority levels and of these functions,
        when known): this node's workers, and other nodes' by the bus."""
        self.hint(tenant_id, levels, functions)
        self._bus.publish("ready", tenant_id)

    def hint(
        self,
        tenant_id: str,
        levels: Iterable[int] | None = None,
        functions: Iterable[str] | None = None,
    ) -> None:
        """New ready work for a tenant, as heard from another node (levels unknown)."""
        self._generation[tenant_id] += 1
        # A limited function found drained is claimed again only when work for it came.
        if functions is None:
            for key in [k for k in self._drained if k[0] == tenant_id]:
                del self._drained[key]
        else:
            for function in functions:
                self._drained.pop((tenant_id, function), None)
        # Only the levels that got work are worth a look; a submit knows them, so a
        # stream of submits does not make every empty level be probed again.
        known = None if levels is None else set(levels)
        for (tenant, _functions), (floors, _seen) in self._floors.items():
            if tenant == tenant_id:
                floors.refresh(known)
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
                # The safety net: look again even without a wake-up.
                self._empty.clear()
                self._drained.clear()
            self._wake.clear()
            try:
                await self.dispatch_round()
            except Exception:
                log.exception("dispatch round failed")
                await asyncio.sleep(0.1)

    async def dispatch_round(self) -> int:
        """Claim and deliver once; returns how many tasks were dispatched."""
        now = self._clock.now()
        silent_since = now - 2 * self._settings.heartbeat_s
        plans = []
        for conn in self._registry.dispatchable(silent_since):
            key = (conn.tenant_id, conn.functions)
            generation = self._generation[conn.tenant_id]
            if self._empty.get(key) == generation:
                continue
            configs = self._configs(conn.tenant_id)
            together: list[str] = []  # claimed in one request, in priority order
            limited: list[str] = []  # claimed one by one, under their limits
            for f in conn.functions:
                if not _is_limited(configs.get(f)):
                    together.append(f)
                elif (conn.tenant_id, f) not in self._drained:
                    limited.append(f)
            limit = min(conn.free, self._settings.claim_batch)
            conn.reserved += limit  # a concurrent round must not count these slots again
            plans.append((conn, key, generation, limit, limited, tuple(together)))
        if not plans:
            return 0
        self.rounds += 1
        got: dict[int, list[ClaimedTask]] = {id(conn): [] for conn, *_ in plans}

        requests: list[ClaimRequest] = []
        owners: list[tuple[WorkerConn, PriorityFloors]] = []
        try:
            for conn, key, generation, limit, limited, rest in plans:
                left = limit
                for function in limited:  # first: their limits decide how many
                    if left <= 0:
                        break
                    tasks = await self._claim_limited(conn, function, left, now)
                    got[id(conn)].extend(tasks)
                    left -= len(tasks)
                if left <= 0 or not rest:
                    continue
                floors = self._floors_of(key, generation)
                for level, n in floors.plan(left):
                    requests.append(ClaimRequest(conn.tenant_id, conn.worker_id, rest, n, level))
                    owners.append((conn, floors))
            claimed = (
                await self._store.claim_tasks(requests, now, self._settings.lease_s)
                if requests
                else []
            )
        finally:
            for conn, _key, _generation, limit, _limited, _rest in plans:
                conn.reserved -= limit
        for (conn, floors), request, tasks in zip(owners, requests, claimed, strict=True):
            top = max((t.priority for t in tasks), default=None)
            floors.claimed(request.priority, request.limit, len(tasks), top)
            short = request.priority is None and len(tasks) < request.limit
            # Idle until new work, unless limited functions wait for their limits.
            key = (conn.tenant_id, conn.functions)
            generation = self._floors[key][1]
            if short and all(
                (conn.tenant_id, f) in self._drained
                for f in conn.functions
                if f not in request.functions
            ):
                self._empty[key] = generation
            got[id(conn)].extend(tasks)
        total = 0
        for conn, *_ in plans:
            tasks = got[id(conn)]
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

    async def _claim_limited(
        self, conn: WorkerConn, function: str, limit: int, now: float
    ) -> list[ClaimedTask]:
        config = self._configs(conn.tenant_id)[function]
        request = ClaimRequest(conn.tenant_id, conn.worker_id, (function,), limit)
        claim = await self._store.claim_limited(
            request, config.rate, config.burst, config.max_concurrency, now,
            self._settings.lease_s,
        )  # fmt: skip
        if claim.drained:  # nothing more ready: no limited claim until new work arrives
            self._drained[(conn.tenant_id, function)] = True
        if claim.retry_at is not None:
            # The rate held tasks back: look again when the next start is allowed.
            delay = max(0.0, claim.retry_at - self._clock.now())
            asyncio.get_running_loop().call_later(delay, self.wake)
        return claim.tasks

    def _floors_of(self, key: tuple[str, tuple[str, ...]], generation: int) -> PriorityFloors:
        found = self._floors.get(key)
        # hint() refreshes a queue's floors for the work that arrives.
        floors = PriorityFloors() if found is None else found[0]
        self._floors[key] = (floors, generation)
        return floors


def _is_limited(config: FunctionConfig | None) -> bool:
    return config is not None and (config.rate is not None or config.max_concurrency is not None)
