"""The ready queues as the dispatcher knows them, without a query: which tenants got
ready work since a queue was last found short, which limited claims came back drained,
and each queue's priority floors (policy/priority.py).

Everything that makes work ready (a submit, a promotion, a retry, a hand-back, a pause
lifted, another node's hint) calls `notify` or `hint`; slots freed or limits moved call
`wake`. The dispatcher (engine/dispatcher.py) reads and marks the queues between rounds.
A queue is a (tenant, functions) pair: a worker connection's view of the store.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import Iterable

from ..clock import Clock
from ..model import SHARED
from ..policy.priority import PriorityFloors
from ..store.bus import Bus

Queue = tuple[str, tuple[str, ...]]  # (tenant, functions)
# Drained marks of claims over several functions (function names never start with "*"):
WHOLE = "*"  # a tenant's claims under its own limits, + the functions
RESERVE = "*reserve:"  # a shared pool's claims of a tenant's reserve, + the functions
NEWEST = 16  # tenants whose latest ready work is remembered, newest first (light_idle)


class Wakeup:
    """What the dispatcher waits on between rounds: set by submits, finishes and
    connections; waited on with a timeout (the safety-net poll).

    `clock.wait_for(event.wait(), timeout)` costs a task, a timer and a cancellation per
    wait: about 50 µs of a single submit's server time when every submit wakes the
    dispatcher (bench/profile_submit.py). This is one future and one clock timer."""

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self, clock: Clock, timeout: float) -> None:
        """Until set, or `timeout` seconds on `clock` (no error: the caller looks anyway)."""
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter

        def expire() -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = clock.call_later(timeout, expire)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


class Queues:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.woken = Wakeup()
        self.generation: defaultdict[str, int] = defaultdict(int)
        # A queue found short, at the tenant generation it was found so: idle until then.
        self.empty: dict[Queue, int] = {}
        # The same for the plain claim alone (the functions with no limits): its queue
        # may be empty while a limited function's is not. Rounds woken by a rate must not
        # scan a big backlog of the limited function for the others (65 ms a claim with
        # 200,000 queued, which held a 500/s limit to 370/s).
        self.plain_empty: dict[Queue, int] = {}
        # Per queue: its floors, and the tenant generation they last saw.
        self.floors: dict[Queue, tuple[PriorityFloors, int]] = {}
        # Limited claims found without ready work, until work for them arrives.
        self.drained: dict[tuple[str, str], bool] = {}
        # Headroom claims (policy/headroom.py) leave heavy tenants out: one found short is
        # not made again until a tenant not among them gets work. `tick` counts hints;
        # `_newest` holds the latest tick of the last NEWEST tenants hinted.
        self.tick = 0
        self._newest: OrderedDict[str, int] = OrderedDict()
        self.light_empty: dict[Queue, tuple[int, frozenset[str]]] = {}
        self._resynced = False

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
        self.generation[tenant_id] += 1
        self.tick += 1
        self._newest[tenant_id] = self.tick
        self._newest.move_to_end(tenant_id)
        if len(self._newest) > NEWEST:
            self._newest.popitem(last=False)
        if tenant_id == SHARED:
            # Handed back by a shared pool: the tenants' own workers may take it too.
            for tenant in list(self.generation):
                self.generation[tenant] += 1
        else:
            self.generation[SHARED] += 1  # shared pools serve every tenant
        # A limited claim found drained is made again only when work for it came.
        # (A shared pool's claims of a limited function across tenants are SHARED's.)
        if functions is None or tenant_id == SHARED:
            every = tenant_id == SHARED
            for key in [k for k in self.drained if every or k[0] in (tenant_id, SHARED)]:
                del self.drained[key]
        else:
            for function in functions:
                self.drained.pop((tenant_id, function), None)
                self.drained.pop((SHARED, function), None)
            # Claims under the tenant's limits, or of its reserve, cover many functions.
            for key in [k for k in self.drained if k[0] == tenant_id and k[1][:1] == WHOLE]:
                del self.drained[key]
        # Only the levels that got work are worth a look; a submit knows them, so a
        # stream of submits does not make every empty level be probed again.
        known = None if levels is None else set(levels)
        for (tenant, _functions), (floors, _seen) in self.floors.items():
            if tenant in (tenant_id, SHARED) or tenant_id == SHARED:
                floors.refresh(known)
        self.woken.set()

    def wake(self) -> None:
        """Slots were freed, a worker connected, or a limit moved."""
        self.woken.set()

    def newest(self) -> list[str]:
        """The last NEWEST tenants that got ready work, the newest last."""
        return list(self._newest)

    def light_idle(self, queue: Queue, heavy: frozenset[str]) -> bool:
        """Whether a claim leaving out `heavy` found nothing and no other tenant got
        work since (a hand-back to a shared pool counts as anyone's)."""
        found = self.light_empty.get(queue)
        if found is None or found[1] != heavy:
            return False
        for tenant, tick in reversed(self._newest.items()):
            if tenant not in heavy:
                return tick <= found[0]
        # Only heavy tenants among the newest: any other's work is older than them all,
        # unless it fell off the end.
        return len(self._newest) < NEWEST

    def forget(self, keep: Iterable[Queue] = ()) -> None:
        """The safety net: look at every queue again, as if each had new work. The
        queues in `keep` that were found empty keep their marks for now (direct dispatch
        goes on using their idle slots): the dispatcher's round probes them with one slot
        each and `unmark`s those it does not find empty again."""
        kept = set(keep)
        for queue in [q for q in self.empty if q not in kept]:
            del self.empty[queue]
        self.plain_empty.clear()
        self.drained.clear()
        self.light_empty.clear()

    def unmark(self, queue: Queue) -> None:
        """A queue no longer known empty: the next round looks at it fully."""
        self.empty.pop(queue, None)

    def resync(self) -> None:
        """Hints may have been missed, or partitions moved: look at every queue again,
        and ask every other node again (the dispatcher takes `resynced()`)."""
        self.empty.clear()
        self.plain_empty.clear()
        self.light_empty.clear()
        self._resynced = True
        self.woken.set()

    def resynced(self) -> bool:
        """Whether a resync came since the last call (and forget it)."""
        resynced, self._resynced = self._resynced, False
        return resynced

    def floors_of(self, queue: Queue, generation: int) -> PriorityFloors:
        found = self.floors.get(queue)
        # hint() refreshes a queue's floors for the work that arrives.
        floors = PriorityFloors() if found is None else found[0]
        self.floors[queue] = (floors, generation)
        return floors
