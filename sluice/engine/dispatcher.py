"""The dispatcher: leases ready tasks to free worker slots, woken rather than polled.

A round claims, for every connected worker with free slots, up to that many tasks of
its tenant and functions, all in one store commit, then pushes them. A shared pool's
worker (tenant SHARED) claims every tenant's tasks of its functions, in fair order:
start tags (policy/fairness.py) order each level across tenants. Which priority
levels fill the slots is decided per (tenant, functions) queue by `PriorityFloors`
(policy/priority.py): strict order, except the floor shares owed to lower levels,
claimed from those levels by name.

Claims under limits come first, one store transaction each (store.claim_limited:
cluster-wide GCRA and running counts): a function's rate and concurrency, a tenant's
(which then hold all its functions), and on a shared pool a tenant's reserved slots
(topped up before anyone's fair turn); tenants with limits are left out of a shared
pool's plain claim. When a rate holds tasks back, the dispatcher looks again the
moment the next start is allowed. Claims never exceed free slots, so there is no
prefetch. A queue that came back short is remembered as empty until that tenant's next
submit, promotion or requeue, so idle workers cost no queries; a slow poll is the
safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from ..clock import Clock
from ..config import Settings
from ..model import SHARED, ClaimedTask, FunctionConfig, TenantQuota
from ..policy.priority import PriorityFloors
from ..store import ClaimRequest, Limit, Store
from ..store.bus import Bus, LocalBus
from .asks import Asks, RemoteConn
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
        dispatched: Callable[[list[ClaimedTask]], None] | None = None,
        quotas: Callable[[], Mapping[str, TenantQuota]] | None = None,
        settling: Callable[[str, str | None], tuple[str, ...]] | None = None,
        partitions: Callable[[], tuple[int, ...] | None] | None = None,
        rooms: Callable[[str, tuple[str, ...]], dict[str, int]] | None = None,
        sent: Callable[[str, list[ClaimedTask]], None] | None = None,
        held_back: Callable[[str, str], None] | None = None,
    ) -> None:
        # AIMD for worker pools (engine/adaptive.py): each limited function's room.
        self._rooms = rooms or (lambda _tenant, _functions: {})
        self._sent = sent or (lambda _tenant, _tasks: None)
        self._held_back = held_back or (lambda _tenant, _function: None)
        self._partitions = partitions or (lambda: None)
        self.asks: Asks | None = None  # set by the node: dispatch across nodes
        self._settling = settling or (lambda _tenant, _function: ())
        self._quotas = quotas or dict
        self._store = store
        self._dispatched = dispatched or (lambda _tasks: None)
        self._configs = configs or (lambda _tenant: {})
        self._bus: Bus = bus or LocalBus()
        self._registry = registry
        self._clock = clock
        self._settings = settings
        self._wake = asyncio.Event()
        self._generation: defaultdict[str, int] = defaultdict(int)
        self._empty: dict[tuple[str, tuple[str, ...]], int] = {}
        # The same for the plain claim alone (the functions with no limits): its queue
        # may be empty while a limited function's is not. Rounds woken by a rate must not
        # scan a big backlog of the limited function for the others (65 ms a claim with
        # 200,000 queued, which held a 500/s limit to 370/s).
        self._plain_empty: dict[tuple[str, tuple[str, ...]], int] = {}
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
        if tenant_id == SHARED:
            # Handed back by a shared pool: the tenants' own workers may take it too.
            for tenant in list(self._generation):
                self._generation[tenant] += 1
        else:
            self._generation[SHARED] += 1  # shared pools serve every tenant
        # A limited function found drained is claimed again only when work for it came.
        if functions is None or tenant_id == SHARED:
            for key in [k for k in self._drained if k[0] == tenant_id or tenant_id == SHARED]:
                del self._drained[key]
        else:
            for function in functions:
                self._drained.pop((tenant_id, function), None)
            # Claims under the tenant's limits, or of its reserve, cover many functions.
            for key in [k for k in self._drained if k[0] == tenant_id and k[1][:1] == WHOLE]:
                del self._drained[key]
        # Only the levels that got work are worth a look; a submit knows them, so a
        # stream of submits does not make every empty level be probed again.
        known = None if levels is None else set(levels)
        for (tenant, _functions), (floors, _seen) in self._floors.items():
            if tenant in (tenant_id, SHARED) or tenant_id == SHARED:
                floors.refresh(known)
        self._wake.set()

    def resync(self) -> None:
        """Hints may have been missed: look at every worker's queue again."""
        self._empty.clear()
        self._plain_empty.clear()
        if self.asks is not None:
            self.asks.forget()
        self._wake.set()

    def wake(self) -> None:
        """Slots were freed or a worker connected."""
        self._wake.set()

    async def run(self) -> None:
        poll = self._settings.poll_interval_s
        polled = time.monotonic()
        while True:
            wait = poll
            if self.asks is not None:
                due = self.asks.expire()  # unanswered asks give their slots back
                wait = wait if due is None else max(0.01, min(wait, due))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            if time.monotonic() - polled >= poll:
                # The safety net: look again even without a wake-up.
                polled = time.monotonic()
                self._empty.clear()
                self._plain_empty.clear()
                self._drained.clear()
                if self.asks is not None:
                    self.asks.forget()
            self._wake.clear()
            try:
                if self.asks is not None:
                    await self.asks.reconcile()  # between rounds: none of ours in flight
                await self.dispatch_round()
            except Exception:
                log.exception("dispatch round failed")
                await asyncio.sleep(0.1)

    async def dispatch_round(self) -> int:
        """Claim and deliver once; returns how many tasks were dispatched."""
        now = self._clock.now()
        silent_since = now - 2 * self._settings.heartbeat_s
        quotas = self._quotas()
        parts = self._partitions()
        asks = self.asks
        remote = asks.take() if asks is not None else []  # other nodes' workers' asks
        plans = []
        conns: list[WorkerConn | RemoteConn] = [*self._registry.dispatchable(silent_since)]
        # Under a rate limit the first claim of a round takes what the rate allows: asks
        # and this node's workers go first by turns.
        try:
            for conn in [*remote, *conns] if self.rounds % 2 else [*conns, *remote]:
                key = (conn.tenant_id, conn.functions)
                generation = self._generation[conn.tenant_id]
                local_empty = self._empty.get(key) == generation or parts == ()
                limit = min(conn.free, self._settings.claim_batch)
                if asks is not None and not isinstance(conn, RemoteConn):
                    # Other nodes' partitions get their share of this worker's slots.
                    limit = asks.plan(conn, limit, generation, local_empty)
                if local_empty or limit <= 0:
                    continue
                limited, together, exclude = self._split(conn, quotas)
                conn.reserved += limit  # a concurrent round must not count these slots again
                plans.append((conn, key, generation, limit, limited, together, exclude))
        except BaseException:
            for conn, _key, _generation, limit, *_ in plans:
                conn.reserved -= limit
            if remote:
                asks.settle(remote)  # type: ignore[union-attr]
            raise
        try:
            return await self._claim_and_deliver(plans, now, parts)
        finally:
            if remote:
                asks.settle(remote)  # type: ignore[union-attr]

    async def _claim_and_deliver(
        self, plans: list[Any], now: float, parts: tuple[int, ...] | None
    ) -> int:
        if not plans:
            return 0
        self.rounds += 1
        got: dict[int, list[ClaimedTask]] = {id(conn): [] for conn, *_ in plans}
        limited_of = {id(plan[0]): plan[4] for plan in plans}

        requests: list[ClaimRequest] = []
        owners: list[tuple[WorkerConn | RemoteConn, PriorityFloors | None]] = []
        capped: set[int] = set()  # connections an AIMD limit held back this round
        # AIMD rooms (engine/adaptive.py), one count for the round across connections:
        # (tenant, function) -> room; an ask's own allotment for another node's worker.
        shared_rooms: dict[tuple[str, str], int] = {}
        # Single-function claims capped by a room below the free slots: (conn, f, n).
        capped_claims: dict[int, tuple[WorkerConn | RemoteConn, str, int]] = {}
        try:
            for conn, key, generation, limit, limited, rest, exclude in plans:
                left = limit
                if isinstance(conn, RemoteConn):
                    rooms = {(conn.tenant_id, f): room for f, room in conn.caps.items()}
                else:
                    for f, room in self._rooms(conn.tenant_id, conn.functions).items():
                        shared_rooms.setdefault((conn.tenant_id, f), room)
                    rooms = shared_rooms
                limited = _alone(limited, {f for (t, f) in rooms if t == conn.tenant_id})
                for step in limited:  # first: their limits decide how many
                    if left <= 0:
                        break
                    n = left
                    room_key = (conn.tenant_id, step.functions[0])
                    if len(step.functions) == 1 and room_key in rooms:
                        n = min(left, rooms[room_key])
                        rooms[room_key] -= n
                    tasks = await self._claim_limited(conn, step, n, now, parts)
                    if n < left and len(tasks) == n > 0:  # the room, not the queue, ran out
                        capped.add(id(conn))
                        self._held_back(*room_key)
                    got[id(conn)].extend(tasks)
                    left -= len(tasks)
                aimd = [f for f in rest if (conn.tenant_id, f) in rooms]
                if aimd:
                    # Functions under an AIMD limit are claimed on their own, at most
                    # their room, before the others share what is left.
                    for f in aimd:
                        n = min(left, rooms[(conn.tenant_id, f)])
                        if n <= 0:
                            continue
                        rooms[(conn.tenant_id, f)] -= n
                        if n < left:
                            capped_claims[len(requests)] = (conn, f, n)
                        requests.append(
                            ClaimRequest(
                                conn.tenant_id, conn.worker_id, (f,), n, None, exclude, parts
                            )
                        )
                        owners.append((conn, None))
                        left -= n
                    rest = tuple(f for f in rest if f not in aimd)
                if left <= 0 or not rest:
                    continue
                if self._plain_empty.get(key) == generation:
                    continue  # nothing ready for them since the last look
                floors = self._floors_of(key, generation)
                for level, n in floors.plan(left):
                    requests.append(
                        ClaimRequest(conn.tenant_id, conn.worker_id, rest, n, level, exclude, parts)
                    )
                    owners.append((conn, floors))
            claimed = (
                await self._store.claim_tasks(requests, now, self._settings.lease_s)
                if requests
                else []
            )
        except BaseException:
            # Tasks already claimed this round would sit leased until the reaper: give
            # them back (no attempt used) before the error goes on.
            for conn, *_ in plans:
                held = [(t.id, t.attempt, t.dispatched_at) for t in got[id(conn)]]
                if held:
                    with contextlib.suppress(Exception):
                        await self._store.release_tasks(conn.tenant_id, conn.worker_id, held, now)
                        self.notify(conn.tenant_id)
            raise
        finally:
            for conn, _key, _generation, limit, *_ in plans:
                conn.reserved -= limit
        for i, ((conn, of_level), request, tasks) in enumerate(
            zip(owners, requests, claimed, strict=True)
        ):
            if conn.tenant_id == SHARED:
                self._dispatched(tasks)  # the one claim in fair order across tenants
            if of_level is None:  # a function under an AIMD limit
                if i in capped_claims and len(tasks) == request.limit:
                    capped.add(id(conn))  # the room, not the queue, ran out
                    self._held_back(conn.tenant_id, capped_claims[i][1])
                got[id(conn)].extend(tasks)
                continue
            top = max((t.priority for t in tasks), default=None)
            of_level.claimed(request.priority, request.limit, len(tasks), top)
            short = request.priority is None and len(tasks) < request.limit
            # Idle until new work, unless limited functions wait for their limits.
            key = (conn.tenant_id, conn.functions)
            generation = self._floors[key][1]
            drained = all(s.drained_key in self._drained for s in limited_of[id(conn)])
            if short:
                self._plain_empty[key] = generation
            if short and drained and id(conn) not in capped:
                self._empty[key] = generation
            got[id(conn)].extend(tasks)
        total = 0
        for target, key, generation, _limit, limited, rest, _exclude in plans:
            if isinstance(target, RemoteConn):  # first, before anything awaits
                # Its node asks again soon if limits, not a lack of work, held it short.
                plain_more = bool(rest) and self._plain_empty.get(key) != generation
                drained = all(s.drained_key in self._drained for s in limited)
                target.more = plain_more or not drained or id(target) in capped
                total += len(got[id(target)])
                target.deliver(got[id(target)])  # its node delivers them (the answer says)
        for target, *_ in plans:
            tasks = got[id(target)]
            if isinstance(target, RemoteConn) or not tasks:
                continue
            live = self._registry.get(target.tenant_id, target.worker_id) is target
            if target.closed or not live:
                # The worker left while the claim committed: give the tasks straight back.
                held = [(t.id, t.attempt, t.dispatched_at) for t in tasks]
                await self._store.release_tasks(target.tenant_id, target.worker_id, held, now)
                self.notify(target.tenant_id)
                continue
            total += len(tasks)
            self._sent(target.tenant_id, tasks)
            target.deliver(tasks)
        self.dispatched += total
        if total:
            self._wake.set()  # workers may still have free slots and the queue more work
        return total

    def _split(
        self, conn: WorkerConn | RemoteConn, quotas: Mapping[str, TenantQuota]
    ) -> tuple[list[_Step], tuple[str, ...], tuple[str, ...]]:
        """A connection's claims under limits (made first, one by one), the functions
        claimed together in priority and fair order, and the tenants that claim leaves
        out (a shared pool's: those claimed only under their limits)."""
        steps: list[_Step] = []
        if conn.tenant_id == SHARED:
            # Marks name the pool's functions: a tenant's own workers serve others.
            served = ",".join(conn.functions)
            limited: list[_Step] = []
            for tenant, quota in quotas.items():
                # A tenant's own function of a pool function's name stays its own.
                theirs = self._configs(tenant)
                functions = tuple(f for f in conn.functions if f not in theirs)
                if not functions:
                    continue
                settling = self._settling(tenant, None)
                mine = [_tenant_limit(tenant, quota, settling)] if quota.limited else []
                if quota.min_slots and (tenant, RESERVE + served) not in self._drained:
                    # Every reserve is topped up before anyone's turn, limited or fair.
                    reserve = Limit(
                        f"reserve:{tenant}", max_concurrency=quota.min_slots, settling=settling
                    )
                    steps.append(_Step(tenant, functions, [reserve, *mine], RESERVE + served))
                if mine and (tenant, WHOLE + served) not in self._drained:
                    limited.append(_Step(tenant, functions, mine, WHOLE + served))
            steps += limited
            exclude = tuple(sorted(t for t, q in quotas.items() if q.limited))
            return steps, conn.functions, exclude
        tenant = conn.tenant_id
        found = quotas.get(tenant)
        whole = []
        if found is not None and found.limited:
            whole = [_tenant_limit(tenant, found, self._settling(tenant, None))]
        configs = self._configs(tenant)
        together: list[str] = []
        for f in conn.functions:
            config = configs.get(f)
            if config is None or not _is_limited(config):
                together.append(f)
            elif (tenant, f) not in self._drained:
                limit = Limit(f"{tenant}:{f}", f, config.rate, config.burst,
                              config.max_concurrency, self._settling(tenant, f))  # fmt: skip
                steps.append(_Step(tenant, (f,), [limit, *whole], f))
        if whole and together:  # the tenant's own limits hold all its functions
            mark = WHOLE + ",".join(together)
            if (tenant, mark) not in self._drained:
                steps.append(_Step(tenant, tuple(together), whole, mark))
            together = []
        return steps, tuple(together), ()

    async def _claim_limited(
        self,
        conn: WorkerConn | RemoteConn,
        step: _Step,
        limit: int,
        now: float,
        parts: tuple[int, ...] | None,
    ) -> list[ClaimedTask]:
        request = ClaimRequest(step.tenant_id, conn.worker_id, step.functions, limit,
                               partitions=parts)  # fmt: skip
        claim = await self._store.claim_limited(request, step.limits, now, self._settings.lease_s)
        if claim.drained:  # nothing more ready: no limited claim until new work arrives
            self._drained[step.drained_key] = True
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


def _alone(steps: list[_Step], aimd: set[str]) -> list[_Step]:
    """Claims under limits that cover several functions (a tenant's own limits, a
    reserve), with the functions under an AIMD limit taken out into claims of their own,
    under the same limits: the room applies to one function."""
    if not aimd:
        return steps
    out = []
    for step in steps:
        mine = [f for f in step.functions if f in aimd]
        if len(step.functions) == 1 or not mine:
            out.append(step)
            continue
        out += [_Step(step.tenant_id, (f,), step.limits, f) for f in mine]
        others = tuple(f for f in step.functions if f not in aimd)
        if others:
            out.append(_Step(step.tenant_id, others, step.limits, step.mark))
    return out


def _is_limited(config: FunctionConfig) -> bool:
    return config.rate is not None or config.max_concurrency is not None


def _tenant_limit(tenant_id: str, quota: TenantQuota, settling: tuple[str, ...]) -> Limit:
    return Limit(
        f"tenant:{tenant_id}", None, quota.rate, quota.burst, quota.max_concurrency, settling
    )


# Drained marks of claims over several functions (function names never start with "*"):
WHOLE = "*"  # a tenant's claims under its own limits, + the functions
RESERVE = "*reserve:"  # a shared pool's claims of a tenant's reserve, + the functions


class _Step(msgspec.Struct, frozen=True):
    """One claim under limits: a tenant's tasks of these functions."""

    tenant_id: str
    functions: tuple[str, ...]
    limits: list[Limit]
    mark: str  # a function, or WHOLE or RESERVE and the functions

    @property
    def drained_key(self) -> tuple[str, str]:
        return (self.tenant_id, self.mark)
