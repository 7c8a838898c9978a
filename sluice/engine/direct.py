"""Direct dispatch: a submit (engine/intake.py) or a due delayed task (engine/delays.py)
that finds an idle worker slot is committed already leased to it and pushed at once:
one write, no dispatcher round. Only when that cannot change who runs first (`plan`
says when); otherwise the tasks go to the queue and the dispatcher's next round
(engine/dispatcher.py), as always.

The flow: `plan` reserves the slots (so a round running meanwhile does not count them),
the caller commits (store.submit_leased or store.promote_leased), then `deliver` pushes
what was leased, or `cancel` frees the slots if the commit failed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import msgspec

from ..contract import FunctionConfig
from ..model import READY, ClaimedTask, NewTask
from .adaptive import AdaptivePools
from .functions import Functions
from .meters import Meters
from .partitions import Partitions
from .queues import Queues
from .quotas import Quotas
from .registry import Registry, WorkerConn
from .runtime import Runtime

if TYPE_CHECKING:
    from .tracing import ServerSpans


class DirectDispatch:
    def __init__(
        self,
        rt: Runtime,
        queues: Queues,
        registry: Registry,
        *,
        functions: Functions,
        quotas: Quotas,
        partitions: Partitions,
        adaptive: AdaptivePools,
        meters: Meters | None = None,
        spans: ServerSpans | None = None,
    ) -> None:
        self._rt = rt
        self._queues = queues
        self._registry = registry
        self._functions = functions
        self._quotas = quotas
        self._partitions = partitions
        self._adaptive = adaptive
        self._meters = meters or Meters(rt)
        self._spans = spans  # dispatch spans, when tracing is on
        self.dispatched = 0  # tasks leased by their submit or promotion and pushed

    def plan(self, tenant_id: str, tasks: list[NewTask]) -> Direct | None:
        """An idle slot for tasks being submitted, reserved, when one may take them at
        once: the submit then commits them already leased to it and pushes them (one
        write, no round). Only when that cannot change who runs first: nothing of the
        worker's functions is ready (the last round found its queue empty and no submit,
        promotion or requeue came since), no limit, quota, reserve or AIMD room decides
        how many may start, and this node is the only one (no other node's partitions
        or asks share the worker). Otherwise the tasks go to the queue as always."""
        if any(t.key is not None for t in tasks):
            return None  # a keyed submit may find its key held: the plain path decides
        ready = [t for t in tasks if t.state == READY]
        if not ready:
            return None
        functions = {t.function for t in ready}
        idle = (conn for conn, free in self._idle(tenant_id) if functions.issubset(free))
        # Least busy first (Registry.dispatchable). Several idle processes share a batch:
        # the first leases its share, the rest stay ready and the round that follows
        # gives them to the next least busy, so two tasks sent together run in two
        # processes at once (issue 20 point 7). A single task needs no count.
        sharing = [*idle] if len(ready) > 1 else [*itertools.islice(idle, 1)]
        for conn in sharing[:1]:
            n = min(len(ready), conn.free, -(-len(ready) // len(sharing)))
            first = sorted(ready, key=lambda t: (-t.priority, t.stag, t.id))[:n]
            conn.reserved += n  # a round running meanwhile must not count these slots
            return Direct(conn, n, tuple(functions), [t.id for t in first])
        return None

    def plan_due(self, tenant_id: str) -> Direct | None:
        """The same for delayed tasks the timer heap fires: an idle worker's free slots,
        reserved, and the functions it may take that way (store.promote_leased picks
        which of the due tasks, in claim order)."""
        for conn, free in self._idle(tenant_id):
            n = conn.free
            conn.reserved += n
            return Direct(conn, n, tuple(sorted(free)))
        return None

    def _idle(self, tenant_id: str) -> Iterator[tuple[WorkerConn, set[str]]]:
        """The tenant's own workers here with free slots and nothing of theirs ready,
        each with its functions whose tasks may start without a round."""
        if not self._rt.settings.direct_dispatch or self._partitions.others:
            return
        if self._partitions.claim_filter is not None:
            return
        quota = self._quotas.limited().get(tenant_id)
        if quota is not None and (quota.limited or quota.min_slots):
            return
        configs = self._functions.cached_of(tenant_id)
        silent_since = self._rt.clock.now() - 2 * self._rt.settings.heartbeat_s
        generation = self._queues.generation[tenant_id]
        for conn in self._registry.dispatchable(silent_since):
            if (
                conn.tenant_id != tenant_id
                or conn.draining
                or self._queues.empty.get((tenant_id, conn.functions)) != generation
            ):
                continue
            # Not those a limit or an AIMD room counts, nor what must fit its memory.
            counted = self._adaptive.rooms(tenant_id, conn.functions).keys()
            sized = demands(self._functions, conn).keys() if conn.bounded else set()
            free = {
                f for f in conn.functions
                if f not in counted and f not in sized
                and not (f in configs and is_limited(configs[f]))
            }  # fmt: skip
            if free:
                yield conn, free

    async def deliver(self, plan: Direct, claimed: list[ClaimedTask]) -> None:
        """The committed direct dispatch: its tasks go to the worker now."""
        conn = plan.conn
        conn.reserved -= plan.slots
        if not claimed:
            return
        live = self._registry.get(conn.tenant_id, conn.worker_id) is conn
        if conn.closed or not live:  # it left while the submit committed: back to the queue
            held = [(t.id, t.attempt, t.dispatched_at) for t in claimed]
            await self._rt.store.release_tasks(conn.tenant_id, conn.worker_id, held,
                                               self._rt.clock.now())  # fmt: skip
            self._queues.notify(conn.tenant_id)
            return
        self._meters.dispatched([claimed])
        if self._spans is not None:
            self._spans.dispatched(claimed, self._rt.clock.now())
        conn.deliver(claimed)
        self.dispatched += len(claimed)

    def cancel(self, plan: Direct) -> None:
        """The submit or promotion failed: the reserved slots are free again."""
        plan.conn.reserved -= plan.slots


def demands(functions: Functions, conn: WorkerConn) -> dict[str, tuple[float, float]]:
    """What each of a worker's functions declares of the memory and CPU it offers."""
    configs = functions.cached_of(conn.tenant_id)
    out = {}
    for f in conn.functions:
        config = configs.get(f)
        if config is None:
            continue
        memory = (config.memory_mb or 0) if conn.memory_mb is not None else 0
        cpu = (config.cpu or 0.0) if conn.cpu is not None else 0.0
        if memory or cpu:
            out[f] = (float(memory), cpu)
    return out


def is_limited(config: FunctionConfig) -> bool:
    """Whether a function's rate or concurrency limit decides how many may start."""
    return config.rate is not None or config.max_concurrency is not None


class Direct(msgspec.Struct, frozen=True):
    """Slots of one worker reserved for tasks a submit or a promotion commits leased
    to it."""

    conn: WorkerConn
    slots: int
    functions: tuple[str, ...]  # of those it may take that way
    ids: list[str] = []  # a submit's: the tasks to lease, the first in fair order
