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
pool's plain claim. A shared pool's worker keeps a slot of headroom for the tenants
below their share while a heavy one floods it (policy/headroom.py). When a rate holds
tasks back, the dispatcher looks again the moment the next start is allowed. Claims
never exceed free slots plus the worker's prefetch window (policy/prefetch.py). A queue
that came back short is remembered as empty until that tenant's next submit, promotion
or requeue, so idle workers cost no queries; a slow poll is the safety net.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec

from ..contract import TenantQuota
from ..model import SHARED, ClaimedTask
from ..policy import headroom
from ..policy.priority import PriorityFloors
from ..store import ClaimRequest, Limit
from .adaptive import AdaptivePools
from .asks import Asks, RemoteConn
from .direct import demands, is_limited
from .fairness import Fairness
from .functions import Functions
from .holds import Holds
from .meters import Meters
from .partitions import Partitions
from .queues import RESERVE, WHOLE, Queue, Queues
from .quotas import Quotas
from .registry import TARGET_PREFIX, Registry, Settling, WorkerConn
from .runtime import Runtime

if TYPE_CHECKING:
    from .tracing import ServerSpans

log = logging.getLogger("sluice.dispatcher")
FAILED_ROUND_PAUSE_S = 0.1
PROBE_SLOTS = 1  # what the safety net's round claims of a queue known empty
# A headroom claim asks for the tasks of at most this many tenants below their share: those
# that got work or ran on a shared pool most lately.
HEADROOM_TENANTS = 64


class Dispatcher:
    def __init__(
        self,
        rt: Runtime,
        queues: Queues,
        registry: Registry,
        *,
        functions: Functions,
        quotas: Quotas,
        fairness: Fairness,
        partitions: Partitions,
        adaptive: AdaptivePools,
        asks: Asks,
        settling: Settling,
        spans: ServerSpans | None = None,
        meters: Meters | None = None,
        holds: Holds | None = None,
    ) -> None:
        self._rt = rt
        self._queues = queues
        self._registry = registry
        self._spans = spans  # wait and dispatch spans, when tracing is on
        self._holds = holds or Holds()  # the waterfall's `held` stage
        self._functions = functions
        self._quotas = quotas
        self._fairness = fairness
        self._partitions = partitions
        self._adaptive = adaptive
        self._asks = asks
        self._settling = settling
        self._meters = meters or Meters(rt)
        self.rounds = 0
        self.dispatched = 0
        self._active = headroom.Active()  # tenants shared pools ran lately

    async def run(self) -> None:
        clock, queues, asks = self._rt.clock, self._queues, self._asks
        poll = self._rt.settings.poll_interval_s
        polled = clock.monotonic()
        probe = False
        while True:
            # The safety net looks every `poll` seconds, however often wake-ups come.
            wait = max(0.0, polled + poll - clock.monotonic())
            due = asks.expire()  # unanswered asks give their slots back
            wait = wait if due is None else max(0.01, min(wait, due))
            await queues.woken.wait(clock, wait)
            if clock.monotonic() - polled >= poll:
                # The safety net: look again even without a wake-up.
                polled = clock.monotonic()
                # With other nodes, every queue is looked at again; alone, the queues
                # known empty are probed instead, so their idle slots stay free for
                # direct dispatch meanwhile (engine/direct.py): forgetting them sent
                # the submits of the next milliseconds through a round, once a second.
                probe = not self._partitions.others
                if not probe:
                    queues.forget()  # (a probing round forgets what it will not probe)
                asks.forget()
            if queues.resynced():
                asks.forget()
            queues.woken.clear()
            try:
                await asks.reconcile()  # between rounds: none of ours in flight
                await self.dispatch_round(probe)
                probe = False
            except Exception:
                log.exception("dispatch round failed")
                await clock.sleep(FAILED_ROUND_PAUSE_S)

    async def dispatch_round(self, probe: bool = False) -> int:
        """Claim and deliver once; returns how many tasks were dispatched. `probe`: the
        safety net's round, which claims at most PROBE_SLOTS for each queue known empty
        that direct dispatch may serve, and keeps it marked only if found empty again."""
        now = self._rt.clock.now()
        silent_since = now - 2 * self._rt.settings.heartbeat_s
        quotas = self._quotas.limited()
        parts = self._partitions.claim_filter
        asks, queues = self._asks, self._queues
        remote = asks.take()  # other nodes' workers' asks
        plans: list[_Plan] = []
        probed: set[int] = set()
        local = self._registry.dispatchable(silent_since)  # (each with a free slot)
        if probe:  # a busy worker's queue is not probed: it is looked at fully next time
            queues.forget(keep={(c.tenant_id, c.functions) for c in local if self._probes(c)})
        for worker in local:
            if worker.bounded:
                worker.demands = demands(self._functions, worker)
        conns: list[WorkerConn | RemoteConn] = [*local]
        # Under a rate limit the first claim of a round takes what the rate allows: asks
        # and this node's workers go first by turns.
        try:
            for conn in [*remote, *conns] if self.rounds % 2 else [*conns, *remote]:
                key = (conn.tenant_id, conn.functions)
                generation = queues.generation[conn.tenant_id]
                local_empty = queues.empty.get(key) == generation or parts == ()
                if probe and local_empty and parts != () and self._probes(conn):
                    local_empty = False
                    probed.add(id(conn))
                limit = min(conn.free, self._rt.settings.claim_batch)
                # Tenants at their share, left out by a shared pool's headroom: decided
                # where the worker is, and carried by its asks to the other nodes.
                flooding: frozenset[str] = frozenset()
                if isinstance(conn, RemoteConn):
                    flooding = conn.flooding
                else:
                    if conn.tenant_id == SHARED and not local_empty:
                        room = self._headroom(conn, now)
                        if room is not None:
                            limit, flooding = min(limit, room[0]), room[1]
                    # Other nodes' partitions get their share of this worker's slots.
                    limit = asks.plan(conn, limit, generation, local_empty, flooding)
                    if id(conn) in probed:
                        limit = min(limit, PROBE_SLOTS)
                if local_empty or limit <= 0:
                    continue
                limited, together, exclude = self._split(conn, quotas)
                conn.reserved += limit  # a concurrent round must not count these slots again
                plans.append((conn, key, generation, limit, limited, together, exclude, flooding))
        except BaseException:
            for conn, _key, _generation, limit, *_ in plans:
                conn.reserved -= limit
            if remote:
                asks.settle(remote)
            raise
        began = self._rt.clock.monotonic()
        try:
            return await self._claim_and_deliver(plans, now, parts, probed)
        finally:
            if plans:
                self._meters.round(self._rt.clock.monotonic() - began)
            if remote:
                asks.settle(remote)

    async def _claim_and_deliver(
        self, plans: list[_Plan], now: float, parts: tuple[int, ...] | None, probed: set[int]
    ) -> int:
        if not plans:
            return 0
        self.rounds += 1
        rnd = _Round(plans, self._queues.tick)
        try:
            # One connection's claims failing (a limit the store cannot apply) must not
            # keep every other tenant's workers idle: the round goes on without them. When
            # all fail (the store is down) the round fails, once.
            failed: list[tuple[WorkerConn | RemoteConn, Exception]] = []
            for plan in plans:
                try:
                    await self._plan_claims(rnd, plan, now, parts)
                except Exception as exc:
                    failed.append((plan[0], exc))
            if failed and len(failed) == len(plans):
                raise failed[0][1]
            for conn, error in failed:
                log.error("claims for worker %s of %s failed; the round went on without it",
                          conn.worker_id, conn.tenant_id, exc_info=error)  # fmt: skip
            # Stamped now, not when the round began: a task submitted in between is never
            # shown dispatched before it was submitted.
            claimed: list[list[ClaimedTask]] = []
            if rnd.requests:
                began = self._rt.clock.monotonic()
                claimed = await self._rt.store.claim_tasks(
                    rnd.requests, self._rt.clock.now(), self._rt.settings.lease_s
                )
                self._meters.store_op("claim", self._rt.clock.monotonic() - began)
        except BaseException:
            # Tasks already claimed this round would sit leased until the reaper: give
            # them back (no attempt used) before the error goes on.
            for conn, *_ in plans:
                held = [(t.id, t.attempt, t.dispatched_at) for t in rnd.got[id(conn)]]
                if held:
                    with contextlib.suppress(Exception):
                        await self._rt.store.release_tasks(
                            conn.tenant_id, conn.worker_id, held, now
                        )
                        self._queues.notify(conn.tenant_id)
            raise
        finally:
            for conn, _key, _generation, limit, *_ in plans:
                conn.reserved -= limit
        self._settle_claims(rnd, claimed)
        for conn, key, *_ in plans:
            # A probe keeps its queue's mark only if its claim came back short in plain
            # order (found empty again); one that found work (a wake-up was missed), or
            # whose claim a limit or the headroom made, leaves the next round to look fully.
            if id(conn) in probed and (rnd.got[id(conn)] or key not in rnd.confirmed):
                self._queues.unmark(key)
        return await self._deliver_round(plans, rnd, now)

    async def _plan_claims(
        self, rnd: _Round, plan: _Plan, now: float, parts: tuple[int, ...] | None
    ) -> None:
        """One connection's share of the round: the claims whose size must be known
        before the next (limits, sized functions) made now; the rest (AIMD rooms, the
        headroom's, the priority floors') added to the round's one claim."""
        conn, key, generation, limit, limited, rest, exclude, flooding = plan
        left = limit
        if isinstance(conn, RemoteConn):
            rooms = {(conn.tenant_id, f): room for f, room in conn.caps.items()}
        else:
            # AIMD rooms (engine/adaptive.py), one count for the round across
            # connections; an ask carries its own allotment for another node's worker.
            for f, room in self._adaptive.rooms(conn.tenant_id, conn.functions).items():
                rnd.shared_rooms.setdefault((conn.tenant_id, f), room)
            rooms = rnd.shared_rooms
        # Functions that declare memory or CPU a worker bounds are claimed alone, at most
        # what fits, one after the other (each claim's count known).
        sized = conn if isinstance(conn, WorkerConn) and conn.demands else None
        heavy = sized.demands if sized is not None else {}
        resources = sized.left(self._asks.promised(sized)) if sized is not None else (0.0, 0.0)
        alone = {f for (t, f) in rooms if t == conn.tenant_id} | heavy.keys()
        for step in _alone(limited, alone):  # first: their limits decide how many
            if left <= 0:
                break
            n = left
            room_key = (conn.tenant_id, step.functions[0])
            by_room = False  # an AIMD room, not the worker's size, makes the claim short
            if len(step.functions) == 1 and room_key in rooms:
                n = min(left, rooms[room_key])
                by_room = n < left and _is_room(conn, step.functions[0])
            fits = sized.room(step.functions[0], resources) if sized is not None else None
            if len(step.functions) == 1 and fits is not None:
                if fits < n:
                    n, by_room = fits, False
                if n <= 0:
                    continue
            if len(step.functions) == 1 and room_key in rooms:
                rooms[room_key] -= n
            tasks = await self._claim_limited(conn, step, n, now, parts)
            if fits is not None and tasks:
                resources = _less(resources, heavy[step.functions[0]], len(tasks))
            if n < left and len(tasks) == n > 0:  # a cap, not the queue, ran out
                rnd.capped.add(id(conn))
                if by_room:
                    self._adaptive.held_back(*room_key)
            rnd.got[id(conn)].extend(tasks)
            left -= len(tasks)
        for f in _turns([f for f in rest if f in heavy], self.rounds):
            assert sized is not None  # (heavy is empty without it)
            fits = sized.room(f, resources) or 0
            n = min(left, fits, rooms.get((conn.tenant_id, f), left))
            if n <= 0 or (conn.tenant_id, f) in self._queues.drained:
                continue  # (drained: no query until work for it comes)
            if (conn.tenant_id, f) in rooms:
                rooms[(conn.tenant_id, f)] -= n
            request = ClaimRequest(conn.tenant_id, conn.worker_id, (f,), n, None, exclude, parts)
            claim = await self._rt.store.claim_tasks([request], now, self._rt.settings.lease_s)
            if conn.tenant_id == SHARED:
                self._fairness.dispatched(claim[0])
            rnd.got[id(conn)].extend(claim[0])
            left -= len(claim[0])
            if len(claim[0]) < n:
                self._queues.drained[(conn.tenant_id, f)] = True
            resources = _less(resources, heavy[f], len(claim[0]))
        rest = tuple(f for f in rest if f not in heavy)
        # Functions under an AIMD limit are claimed on their own, at most their room,
        # before the others share what is left.
        for f in [f for f in rest if (conn.tenant_id, f) in rooms]:
            n = min(left, rooms[(conn.tenant_id, f)])
            if n <= 0:
                if _is_room(conn, f):
                    self._holds.held(conn.tenant_id, (f,), self._rt.clock.now())
                continue
            rooms[(conn.tenant_id, f)] -= n
            if n < left:
                rnd.capped_claims[len(rnd.requests)] = (conn, f, n)
            rnd.add(conn, None, ClaimRequest(conn.tenant_id, conn.worker_id, (f,), n, None,
                                             exclude, parts))  # fmt: skip
            left -= n
        rest = tuple(f for f in rest if (conn.tenant_id, f) not in rooms)
        if left <= 0 or not rest:
            return
        if flooding:
            # The headroom (limits, reserves, AIMD rooms and sizes were claimed as always,
            # above): the plain claim only for the tenants below their share.
            light = self._light(flooding)
            if light and not self._queues.light_idle(key, flooding):
                rnd.light_claims[len(rnd.requests)] = flooding
                rnd.add(conn, None, ClaimRequest(conn.tenant_id, conn.worker_id, rest, left,
                                                 None, exclude, parts, tenants=light))  # fmt: skip
            return
        if self._queues.plain_empty.get(key) == generation:
            return  # nothing ready for them since the last look
        floors = self._queues.floors_of(key, generation)
        for level, n in floors.plan(left):
            request = ClaimRequest(conn.tenant_id, conn.worker_id, rest, n, level, exclude, parts)
            rnd.add(conn, floors, request)

    def _settle_claims(self, rnd: _Round, claimed: list[list[ClaimedTask]]) -> None:
        """What the round's one claim found, remembered: a queue short of its request is
        idle until new work, a capped AIMD room held back, each floor's share claimed."""
        queues = self._queues
        for i, ((conn, of_level), request, tasks) in enumerate(
            zip(rnd.owners, rnd.requests, claimed, strict=True)
        ):
            rnd.got[id(conn)].extend(tasks)
            if conn.tenant_id == SHARED:
                self._fairness.dispatched(tasks)  # the one claim in fair order across tenants
            if i in rnd.light_claims:
                if len(tasks) < request.limit:  # idle until another tenant gets work
                    queues.light_empty[(conn.tenant_id, conn.functions)] = (
                        rnd.tick, rnd.light_claims[i]
                    )  # fmt: skip
                continue
            if of_level is None:  # a function under an AIMD limit
                if i in rnd.capped_claims and len(tasks) == request.limit:
                    rnd.capped.add(id(conn))  # the cap, not the queue, ran out
                    f = rnd.capped_claims[i][1]
                    if _is_room(conn, f):  # an AIMD room (not another node's worker's size)
                        self._adaptive.held_back(conn.tenant_id, f)
                        self._holds.held(conn.tenant_id, request.functions,
                                         self._rt.clock.now())  # fmt: skip
                else:
                    self._holds.free(conn.tenant_id, request.functions, self._rt.clock.now())
                continue
            top = max((t.priority for t in tasks), default=None)
            of_level.claimed(request.priority, request.limit, len(tasks), top)
            short = request.priority is None and len(tasks) < request.limit
            # Idle until new work, unless limited functions wait for their limits.
            key = (conn.tenant_id, conn.functions)
            generation = queues.floors[key][1]
            drained = all(s.drained_key in queues.drained for s in rnd.limited_of[id(conn)])
            if short:
                queues.plain_empty[key] = generation
            if short and drained and id(conn) not in rnd.capped:
                queues.empty[key] = generation
                rnd.confirmed.add(key)

    async def _deliver_round(self, plans: list[_Plan], rnd: _Round, now: float) -> int:
        """The round's tasks to their workers: other nodes' asks first (their nodes
        deliver), then this node's own connections."""
        got = rnd.got
        stamped = self._rt.clock.now()
        for key_ in got:
            got[key_] = self._holds.stamp(got[key_], stamped)
        self._meters.dispatched(got.values())
        total = 0
        for target, key, generation, _limit, limited, rest, _exclude, flooding in plans:
            if isinstance(target, RemoteConn):  # first, before anything awaits
                # Its node asks again soon if limits, not a lack of work, held it short
                # (a headroom claim short of its slots found every light tenant's work).
                plain_more = (
                    bool(rest) and not flooding
                    and self._queues.plain_empty.get(key) != generation
                )  # fmt: skip
                drained = all(s.drained_key in self._queues.drained for s in limited)
                target.more = plain_more or not drained or id(target) in rnd.capped
                total += len(got[id(target)])
                target.deliver(got[id(target)])  # its node delivers them (the answer says)
        for target, *_ in plans:
            tasks = got[id(target)]
            if isinstance(target, RemoteConn) or not tasks:
                continue
            if target.tenant_id == SHARED:
                self._active.saw({t.tenant_id for t in tasks}, now)
            live = self._registry.get(target.tenant_id, target.worker_id) is target
            if target.closed or not live:
                # The worker left while the claim committed: give the tasks straight back.
                held = [(t.id, t.attempt, t.dispatched_at) for t in tasks]
                await self._rt.store.release_tasks(target.tenant_id, target.worker_id, held, now)
                self._queues.notify(target.tenant_id)
                continue
            total += len(tasks)
            self._adaptive.sent(target.tenant_id, tasks)
            if self._spans is not None:
                self._spans.dispatched(tasks, self._rt.clock.now())
            target.deliver(tasks)
        self.dispatched += total
        if total:
            self._queues.wake()  # workers may still have free slots and the queue more work
        return total

    def _probes(self, conn: WorkerConn | RemoteConn) -> bool:
        """Whether the safety net probes this connection's queue found empty (keeping the
        mark) rather than forgetting it: only where direct dispatch may use its slots."""
        return (
            isinstance(conn, WorkerConn)
            and self._rt.settings.direct_dispatch
            and conn.tenant_id != SHARED
            and not conn.worker_id.startswith(TARGET_PREFIX)
        )

    def _headroom(self, conn: WorkerConn, now: float) -> tuple[int, frozenset[str]] | None:
        """How many tasks a shared pool's worker claims now and which tenants are left
        out, while a heavy tenant and another share the pool (policy/headroom.py); None:
        as always."""
        keep = self._rt.settings.shared_headroom
        if keep <= 0:
            return None
        seen = self._active.tenants(now)
        if not seen:
            return None
        running = Counter(t.tenant_id for t in conn.inflight.values() if t is not None)
        active = len(seen) + sum(1 for t in running if t not in seen)
        newcomer = 0.0
        if active == 1:
            # A tenant the pool ran lately, idle here now, and work from another (the
            # newest submit is not theirs): the claim may be a flood new to the pool, so
            # it keeps headroom too, rather than fill every slot before it is known.
            newest = self._queues.newest()
            claimer = newest[-1] if newest else None
            if any(t not in running and t != claimer for t in seen):
                active, newcomer = 2, 1.0
        free = conn.slots - len(conn.inflight) - conn.reserved
        quotas = self._quotas.all()
        if not quotas:  # every weight is 1
            return headroom.plan(conn.slots, free, running, active, keep)
        weight = {t: (q.weight if (q := quotas.get(t)) else 1.0) for t in {*seen, *running}}
        total = sum(weight.values()) + newcomer
        return headroom.plan(conn.slots, free, running, active, keep, weight, total)

    def _light(self, heavy: frozenset[str]) -> tuple[str, ...]:
        """The tenants a headroom claim is for: those that got work or ran on a shared
        pool most lately, the heavy ones left out."""
        out: list[str] = []
        recent = itertools.chain(reversed(self._queues.newest()), reversed(self._active.seen()))
        for tenant in dict.fromkeys(recent):
            if tenant not in heavy and tenant != SHARED:
                out.append(tenant)
                if len(out) == HEADROOM_TENANTS:
                    break
        return tuple(out)

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
            # A pool function's own limits hold for all its tenants together.
            own = self._pool_limits(conn.functions)
            limited: list[_Step] = []
            for tenant, quota in quotas.items():
                # A tenant's own function of a pool function's name stays its own.
                theirs = self._functions.cached_of(tenant)
                functions = tuple(f for f in conn.functions if f not in theirs)
                if not functions:
                    continue
                settling = self._settling.of(tenant, None)
                mine = [_tenant_limit(tenant, quota, settling)] if quota.limited else []
                if quota.min_slots and (tenant, RESERVE + served) not in self._queues.drained:
                    # Every reserve is topped up before anyone's turn, limited or fair.
                    reserve = Limit(
                        f"reserve:{tenant}", max_concurrency=quota.min_slots, settling=settling
                    )
                    step = _Step(tenant, functions, [reserve, *mine], RESERVE + served)
                    steps += _with_pool_limits(step, own, self._queues.drained)
                if mine and (tenant, WHOLE + served) not in self._queues.drained:
                    step = _Step(tenant, functions, mine, WHOLE + served)
                    limited += _with_pool_limits(step, own, self._queues.drained)
            steps += limited
            exclude = tuple(sorted(t for t, q in quotas.items() if q.limited))
            # The other tenants' tasks of a limited pool function: one claim across them,
            # in fair order, under the function's limits.
            for f, limit in own.items():
                if (SHARED, f) not in self._queues.drained:
                    steps.append(_Step(SHARED, (f,), [limit], f, exclude))
            return steps, tuple(f for f in conn.functions if f not in own), exclude
        tenant = conn.tenant_id
        found = quotas.get(tenant)
        whole = []
        if found is not None and found.limited:
            whole = [_tenant_limit(tenant, found, self._settling.of(tenant, None))]
        configs = self._functions.cached_of(tenant)
        together: list[str] = []
        for f in conn.functions:
            config = configs.get(f)
            if config is None or not is_limited(config):
                together.append(f)
            elif (tenant, f) not in self._queues.drained:
                limit = Limit(f"{tenant}:{f}", f, config.rate, config.burst,
                              config.max_concurrency, self._settling.of(tenant, f))  # fmt: skip
                steps.append(_Step(tenant, (f,), [limit, *whole], f))
        if whole and together:  # the tenant's own limits hold all its functions
            mark = WHOLE + ",".join(together)
            if (tenant, mark) not in self._queues.drained:
                steps.append(_Step(tenant, tuple(together), whole, mark))
            together = []
        return steps, tuple(together), ()

    def _pool_limits(self, functions: tuple[str, ...]) -> dict[str, Limit]:
        """The limits of a shared pool's functions that have their own (rate or cap)."""
        configs = self._functions.cached_of(SHARED)
        out = {}
        for f in functions:
            config = configs.get(f)
            if config is not None and is_limited(config):
                out[f] = Limit(f"pool:{f}", f, config.rate, config.burst, config.max_concurrency,
                               self._settling.of_function(f), pool=True)  # fmt: skip
        return out

    async def _claim_limited(
        self,
        conn: WorkerConn | RemoteConn,
        step: _Step,
        limit: int,
        now: float,
        parts: tuple[int, ...] | None,
    ) -> list[ClaimedTask]:
        request = ClaimRequest(step.tenant_id, conn.worker_id, step.functions, limit,
                               exclude=step.exclude, partitions=parts)  # fmt: skip
        rt = self._rt
        claim = await rt.store.claim_limited(request, step.limits, now, rt.settings.lease_s)
        if claim.drained:  # nothing more ready: no limited claim until new work arrives
            self._queues.drained[step.drained_key] = True
        if len(claim.tasks) < limit and not claim.drained:  # a limit, not the queue
            self._holds.held(step.tenant_id, step.functions, rt.clock.now())
        else:
            self._holds.free(step.tenant_id, step.functions, rt.clock.now())
        if claim.retry_at is not None:
            # The rate held tasks back: look again when the next start is allowed.
            rt.clock.call_later(max(0.0, claim.retry_at - rt.clock.now()), self._queues.wake)
        return claim.tasks


def _is_room(conn: WorkerConn | RemoteConn, function: str) -> bool:
    """Whether a connection's cap on a function is an AIMD room (held marks and growth
    count it). This node's rooms all are; another node's ask may cap a function at what
    fits of its worker's memory and CPU instead (Ask.fits)."""
    return not isinstance(conn, RemoteConn) or function in conn.rooms


def _less(left: tuple[float, float], each: tuple[float, float], n: int) -> tuple[float, float]:
    return left[0] - n * each[0], left[1] - n * each[1]


def _turns(functions: list[str], turn: int) -> list[str]:
    """`functions` starting at a different one each round: none always claims first."""
    if not functions:
        return functions
    start = turn % len(functions)
    return functions[start:] + functions[:start]


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


def _with_pool_limits(
    step: _Step, own: dict[str, Limit], drained: Mapping[tuple[str, str], bool]
) -> list[_Step]:
    """A tenant's claim on a shared pool, with each function that has its own limits
    taken out into a claim of its own under both (marked like the whole claim, so the
    tenant's new work makes it again)."""
    mine = [f for f in step.functions if f in own]
    if not mine:
        return [step]
    out = [
        _Step(step.tenant_id, (f,), [*step.limits, own[f]], f"{step.mark}|{f}")
        for f in mine
        if (step.tenant_id, f"{step.mark}|{f}") not in drained
    ]
    others = tuple(f for f in step.functions if f not in own)
    if others:
        out.append(_Step(step.tenant_id, others, step.limits, step.mark))
    return out


def _tenant_limit(tenant_id: str, quota: TenantQuota, settling: tuple[str, ...]) -> Limit:
    return Limit(
        f"tenant:{tenant_id}", None, quota.rate, quota.burst, quota.max_concurrency, settling
    )


class _Step(msgspec.Struct, frozen=True):
    """One claim under limits: a tenant's tasks of these functions."""

    tenant_id: str
    functions: tuple[str, ...]
    limits: list[Limit]
    mark: str  # a function, or WHOLE or RESERVE and the functions
    exclude: tuple[str, ...] = ()  # a claim across a pool's tenants: those left out

    @property
    def drained_key(self) -> tuple[str, str]:
        return (self.tenant_id, self.mark)


# One connection's part of a round: (connection, queue key, its generation, how many,
# limited steps, the other functions, tenants left out, tenants a headroom leaves out).
_Plan = tuple[
    WorkerConn | RemoteConn, tuple[str, tuple[str, ...]], int, int, list[_Step],
    tuple[str, ...], tuple[str, ...], frozenset[str],
]  # fmt: skip


class _Round:
    """One dispatch round's claims: what each connection got, the requests of its one
    claim (with whom each is for), and what the claims on the way learned."""

    def __init__(self, plans: list[_Plan], tick: int) -> None:
        self.tick = tick  # work hinted after this may be missed by this round
        self.got: dict[int, list[ClaimedTask]] = {id(conn): [] for conn, *_ in plans}
        self.limited_of = {id(plan[0]): plan[4] for plan in plans}
        self.requests: list[ClaimRequest] = []
        self.owners: list[tuple[WorkerConn | RemoteConn, PriorityFloors | None]] = []
        self.capped: set[int] = set()  # connections an AIMD limit held back this round
        # AIMD rooms of this node's connections: (tenant, function) -> room.
        self.shared_rooms: dict[tuple[str, str], int] = {}
        # Single-function claims capped by a room below the free slots: (conn, f, n).
        self.capped_claims: dict[int, tuple[WorkerConn | RemoteConn, str, int]] = {}
        # Headroom claims (leaving the heavy tenants out): request index -> those tenants.
        self.light_claims: dict[int, frozenset[str]] = {}
        self.confirmed: set[Queue] = set()  # queues this round found empty

    def add(
        self, conn: WorkerConn | RemoteConn, floors: PriorityFloors | None, request: ClaimRequest
    ) -> None:
        self.requests.append(request)
        self.owners.append((conn, floors))
