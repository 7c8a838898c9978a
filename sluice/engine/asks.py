"""Dispatch across nodes (DESIGN §5 "Multi-node"): the node that holds a partition
decides the order of its tasks and claims them for free worker slots anywhere in the
cluster; the node that holds the worker's connection delivers.

A worker's free slots are split evenly among the nodes that hold partitions (this node
included), skipping those that last came back short for its queue until new work
arrives. This node claims its share from its own partitions directly; for each other
node's share it sends an *ask* on the bus (the worker, its functions, how many). That
node claims in its next dispatch round, exactly as for a worker of its own, with the
lease in the worker's name, and answers *assigned* with the task ids (none, if it had
nothing). The asking node reads those tasks back (`store.get_claimed`) and delivers
them. The slots stay reserved from the ask until the delivery, so no slot is promised
twice; an ask unanswered within ASK_TIMEOUT_S frees its slots and makes that node
*suspect* (asked for one slot at a time) until it answers, so a hung node costs little.
Tasks that arrive for a worker that left, or after their ask timed out and the slots
were taken, are handed back (no attempt used). Lost hints cost time, never tasks: what
was claimed and not delivered comes back when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from typing import TYPE_CHECKING

import msgspec

from ..model import ClaimedTask
from .adaptive import AdaptivePools
from .partitions import Partitions
from .queues import Queues
from .registry import TARGET_PREFIX, Registry, Settling, WorkerConn
from .runtime import Runtime

if TYPE_CHECKING:
    from .tracing import ServerSpans

log = logging.getLogger("sluice.asks")
ASK_TIMEOUT_S = 2.0
HOLD_S = 0.5  # an ask held short by limits, holding nothing, is served this long at most
# An ask held short by limits that holds tasks is answered this soon: its tasks were
# claimed at the rate's pace and must start at it, not in one burst after HOLD_S.
BATCH_S = 0.05
AGAIN_S = 0.05  # after an answer held short by limits, the next ask waits this long
LATE_S = 60.0  # how long a timed-out ask's worker is remembered
ASK_MAX = 128  # task ids per answer: an answer is one NOTIFY (under 8,000 bytes)
MAX_ASK_BYTES = 7000  # an ask is one NOTIFY too: too many functions to name, no ask


class Ask(msgspec.Struct, frozen=True, array_like=True):
    id: str
    to: str  # the node asked
    by: str  # the node holding the worker's connection
    tenant_id: str
    worker: str
    functions: tuple[str, ...]
    n: int
    # Per function, at most this many: its AIMD room (engine/adaptive.py), or what fits
    # of the worker's memory and CPU for a function that declares some, whichever is less.
    caps: dict[str, int]
    # A shared pool's worker keeping headroom (policy/headroom.py): the heavy tenants the
    # claim leaves out. Last, with a default: a node of an older version ignores it.
    flooding: tuple[str, ...] = ()
    # What fits of the worker's memory and CPU, per function that declares some: a cap
    # no smaller than its fit is the worker's size, not an AIMD room, so the node serving
    # the ask marks no AIMD hold for it (as for a sized function of its own workers). An
    # older node ignores it; an older asker sends none (every cap counts as a room).
    fits: dict[str, int] = {}


class Assigned(msgspec.Struct, frozen=True, array_like=True):
    id: str
    to: str  # the node that asked
    ids: list[str]
    more: bool  # short only because of limits (rates, caps): there is more to ask for


_encode = msgspec.json.Encoder().encode
_ask = msgspec.json.Decoder(Ask)
_assigned = msgspec.json.Decoder(Assigned)


class RemoteConn:
    """Another node's worker, as this node serves its ask: one dispatch round."""

    def __init__(self, ask: Ask, at: float) -> None:
        self.ask = ask
        self.at = at  # monotonic, when it arrived
        self.tenant_id = ask.tenant_id
        self.worker_id = ask.worker
        self.functions = ask.functions
        self.reserved = 0
        self.closed = False
        # What is left of each cap: an ask kept for later rounds (held by limits) may not
        # be given its caps again in each of them.
        self.caps = dict(ask.caps)
        self.flooding = frozenset(ask.flooding)
        # Functions whose cap is an AIMD room, not the worker's size (Ask.fits).
        self.rooms = {f for f, cap in ask.caps.items() if cap < ask.fits.get(f, cap + 1)}
        self.tasks: list[ClaimedTask] = []
        self.more = False  # limits, not a lack of work, kept the claim short

    @property
    def free(self) -> int:
        return self.ask.n - len(self.tasks) - self.reserved

    def deliver(self, tasks: list[ClaimedTask]) -> None:
        self.tasks.extend(tasks)
        for t in tasks:
            if t.function in self.caps:
                self.caps[t.function] -= 1


class _Pending(msgspec.Struct):
    conn: WorkerConn
    owner: str
    n: int
    generation: int
    at: float
    caps: dict[str, int]
    ahead: int = 0  # the worker's prefetch window when it was asked for
    flooding: bool = False  # it left tenants out (a shared pool's headroom)


class Asks:
    def __init__(
        self,
        rt: Runtime,
        queues: Queues,
        registry: Registry,
        partitions: Partitions,
        adaptive: AdaptivePools,
        settling: Settling,
        spans: ServerSpans | None = None,
    ) -> None:
        self._rt = rt
        self._spans = spans  # wait and dispatch spans, when tracing is on
        self._queues = queues
        self._registry = registry
        self._partitions = partitions
        self._adaptive = adaptive
        self._settling = settling
        self._pending: dict[str, _Pending] = {}
        self._late: dict[str, _Pending] = {}  # timed out, kept a while for a late answer
        # (node asked, tenant, functions): not before then (that node's limits held back)
        self._later: dict[tuple[str, str, tuple[str, ...]], float] = {}
        self._inbox: list[RemoteConn] = []
        # (node asked, tenant, functions): the generation it last came back short at
        self._empty: dict[tuple[str, str, tuple[str, ...]], int] = {}
        self._suspect: set[str] = set()
        self._turn = itertools.count()
        self._loads: set[asyncio.Task[None]] = set()
        self._loading: set[str] = set()  # task ids answered, being read back and delivered
        self._stale: set[WorkerConn] = set()  # workers an ask of timed out for
        self.asked = 0  # asks sent, for tests and metrics
        self.served = 0  # tasks claimed here for other nodes' workers

    # -- the node holding the worker -------------------------------------------------

    def plan(
        self, conn: WorkerConn, free: int, generation: int, local_empty: bool,
        flooding: frozenset[str] = frozenset(),
    ) -> int:  # fmt: skip
        """Split a worker's free slots among the nodes holding partitions: asks the
        others for their shares; returns this node's own share. `flooding`: the tenants
        the claims leave out (a shared pool's headroom), the asks' claims too."""
        if conn.worker_id.startswith(TARGET_PREFIX):
            return free  # every node calls its targets for its own partitions
        others = self._partitions.others_for(conn.tenant_id)
        if not others:
            return free
        key = (conn.tenant_id, conn.functions)
        busy = {p.owner for p in self._pending.values() if p.conn is conn}
        now = self._rt.clock.monotonic()
        askable = [
            o for o in others
            if o not in busy and self._empty.get((o, *key)) != generation
            and self._later.get((o, *key), 0.0) <= now
        ]  # fmt: skip
        mine = not local_empty and bool(self._partitions.owned)
        members = ([self._rt.node_id] if mine else []) + askable
        if not members:
            return 0
        start = next(self._turn)
        members = members[start % len(members) :] + members[: start % len(members)]
        shares = dict.fromkeys(members, free // len(members))
        for m in members[: free % len(members)]:
            shares[m] += 1
        local = shares.pop(self._rt.node_id, 0)
        # A function's AIMD room is split like the slots (rounded down), and what an ask
        # carries stays reserved until it is answered.
        rooms = self.rooms(conn.tenant_id, conn.functions)
        caps = {f: room // len(members) for f, room in rooms.items()}
        sizes: dict[str, int] = {}
        if conn.demands:
            # What fits of the worker's memory and CPU is split like the slots, and
            # among its functions that declare some, so no two answers overcommit it.
            left = conn.left(self.promised(conn))
            part = len(members) * len(conn.demands)
            for f in conn.demands:
                fits = conn.room(f, (left[0] / part, left[1] / part)) or 0
                caps[f] = min(caps.get(f, fits), fits)
                sizes[f] = fits
        for owner, share in shares.items():
            n = min(share, 1 if owner in self._suspect else ASK_MAX)
            if mine:
                local += share - n  # what a suspect node is not asked for stays here
            if n <= 0:
                continue
            ask = Ask(uuid.uuid4().hex, owner, self._rt.node_id, conn.tenant_id, conn.worker_id,
                      conn.functions, n, caps, tuple(sorted(flooding)), sizes)  # fmt: skip
            payload = _encode(ask).decode()
            if len(payload) > MAX_ASK_BYTES:  # one NOTIFY: too many functions to name
                if mine:
                    local += n
                continue
            conn.reserved += n
            at = self._rt.clock.monotonic()
            self._pending[ask.id] = _Pending(conn, owner, n, generation, at, caps, conn.ahead,
                                             bool(flooding))  # fmt: skip
            self._rt.bus.publish("ask", payload)
            self.asked += 1
        return local

    def promised(self, conn: WorkerConn) -> dict[str, int]:
        """Tasks of the functions that declare memory or CPU that asks in flight for
        this worker may bring (their caps): they count against what it offers."""
        out: dict[str, int] = {}
        if conn.demands:
            for p in self._pending.values():
                if p.conn is conn:
                    for f, cap in p.caps.items():
                        if f in conn.demands:
                            out[f] = out.get(f, 0) + cap
        return out

    def rooms(self, tenant_id: str, functions: tuple[str, ...]) -> dict[str, int]:
        """AIMD rooms of these functions, less what asks in flight carry."""
        rooms = self._adaptive.rooms(tenant_id, functions)
        if rooms and self._pending:
            for p in self._pending.values():
                if p.conn.tenant_id == tenant_id:
                    for f, cap in p.caps.items():
                        if f in rooms:
                            rooms[f] = max(0, rooms[f] - cap)
        return rooms

    def forget(self) -> None:
        """Hints may have been missed or partitions moved: ask every node again."""
        self._empty.clear()
        self._later.clear()

    def on_assigned(self, data: str) -> None:
        answer = _assigned.decode(data)
        if answer.to != self._rt.node_id:
            return
        pending = self._pending.pop(answer.id, None)
        reserved = pending is not None
        if pending is None:
            pending = self._late.pop(answer.id, None)  # timed out: delivered if there is room
            if pending is None:
                return  # unknown: its tasks' leases run out and the reaper requeues them
        else:
            # The slots of the tasks coming stay reserved until they are delivered.
            pending.conn.reserved -= pending.n - len(answer.ids)
            key = (pending.owner, pending.conn.tenant_id, pending.conn.functions)
            if len(answer.ids) < pending.n:
                # Held back by limits, or short of tenants it left out (which may not be
                # heavy at the next ask, with no new work to say so): ask again a little
                # later.
                if answer.more or pending.flooding:
                    self._later[key] = self._rt.clock.monotonic() + AGAIN_S
                else:
                    self._empty[key] = pending.generation
        self._suspect.discard(pending.owner)
        if answer.ids:
            self._loading.update(answer.ids)
            load = asyncio.create_task(self._deliver(answer.ids, pending, reserved))
            self._loads.add(load)
            load.add_done_callback(self._loads.discard)
        self._queues.wake()

    async def _deliver(self, ids: list[str], pending: _Pending, reserved: bool) -> None:
        rt, conn = self._rt, pending.conn
        tenant_id, worker = conn.tenant_id, conn.worker_id
        try:
            tasks = await rt.store.get_claimed(tenant_id, worker, ids)
        finally:
            self._loading.difference_update(ids)
            if reserved:
                conn.reserved -= len(ids)
        # Delivered already (a reconcile), or its result is being written: not again.
        tasks = [t for t in tasks if t.id not in conn.inflight and t.id not in self._settling]
        live = self._registry.get(tenant_id, worker) is conn and not conn.closed
        # An answer to an ask still pending may bring what the worker's prefetch window
        # held when it was asked for, though the window closed meanwhile (the worker holds
        # them, or hands back what its pace does not cover): handing them back here would
        # waste the rate's starts they were claimed with. Slots it no longer offers (a
        # drain, a smaller credit) are not filled. A late answer gets what is free.
        shrunk = max(0, pending.ahead - conn.ahead) if reserved and not conn.draining else 0
        room = max(0, conn.free + shrunk) if live else 0
        keep, back = tasks[:room], tasks[room:]
        if keep:
            self._adaptive.sent(tenant_id, keep)
            if self._spans is not None:
                self._spans.dispatched(keep, rt.clock.now())
            conn.deliver(keep)
        if back:  # the worker left, or its slots were taken after the ask timed out
            with contextlib.suppress(Exception):
                held = [(t.id, t.attempt, t.dispatched_at) for t in back]
                await rt.store.release_tasks(tenant_id, worker, held, rt.clock.now())
            for t in {t.tenant_id for t in back}:
                self._queues.notify(t)
        self._queues.wake()

    def expire(self) -> float | None:
        """Free the slots of asks not answered in time; returns when to look again."""
        now = self._rt.clock.monotonic()
        soonest = None
        for key, at in list(self._later.items()):
            if at <= now:
                del self._later[key]
            else:
                soonest = at - now if soonest is None else min(soonest, at - now)
        for ask_id, p in list(self._late.items()):
            if now - p.at >= LATE_S:
                del self._late[ask_id]
        for ask_id, p in list(self._pending.items()):
            if now - p.at >= ASK_TIMEOUT_S:
                del self._pending[ask_id]
                self._late[ask_id] = p
                p.conn.reserved -= p.n
                if p.owner not in self._suspect:
                    log.warning("node %s did not answer an ask in %.0f s", p.owner, ASK_TIMEOUT_S)
                self._suspect.add(p.owner)
                self._stale.add(p.conn)
        if self._pending:
            due = min(p.at for p in self._pending.values()) + ASK_TIMEOUT_S - now
            soonest = due if soonest is None else min(soonest, due)
        if self._inbox:  # asks held here: answered when their time is up
            due = min(r.at + _hold(r) for r in self._inbox) - now
            soonest = due if soonest is None else min(soonest, due)
        return soonest

    async def reconcile(self) -> None:
        """After an ask went unanswered: the node asked may have claimed tasks for the
        worker and died before answering. Hand back, at no attempt's cost, what is leased
        to the worker but neither delivered nor on its way (else it would wait for its
        lease to run out and cost an attempt). The dispatcher calls this between rounds
        (so none of its own claims is on its way), for workers with no ask pending (so
        no answer is on its way either); the others wait for a later call."""
        if not self._stale:
            return
        asking = {id(p.conn) for p in self._pending.values()}
        for conn in [c for c in self._stale if id(c) not in asking and not self._loading]:
            self._stale.discard(conn)
            if not conn.closed:
                await self._reconcile(conn)

    async def _reconcile(self, conn: WorkerConn) -> None:
        rt = self._rt
        leased = await rt.store.leased_to(conn.tenant_id, conn.worker_id)
        if any(p.conn is conn for p in self._pending.values()) or self._loading:
            self._stale.add(conn)  # asked again meanwhile: next time
            return
        lost = [
            (task_id, attempt, dispatched_at) for task_id, attempt, dispatched_at in leased
            if task_id not in conn.inflight and task_id not in self._loading
            and task_id not in self._settling
        ]  # fmt: skip
        if lost and await rt.store.release_tasks(
            conn.tenant_id, conn.worker_id, lost, rt.clock.now()
        ):
            log.info("handed back %d tasks claimed for %s and never answered", len(lost),
                     conn.worker_id)  # fmt: skip
            self._queues.notify(conn.tenant_id)

    # -- the node holding the partitions ------------------------------------------------

    def on_ask(self, data: str) -> None:
        ask = _ask.decode(data)
        if ask.to == self._rt.node_id:
            self._inbox.append(RemoteConn(ask, self._rt.clock.monotonic()))
            self._queues.wake()

    def take(self) -> list[RemoteConn]:
        inbox, self._inbox = self._inbox, []
        return inbox

    def settle(self, remote: list[RemoteConn]) -> None:
        """After a round: answer the asks that are filled, or have nothing more coming
        here, or have waited long enough (BATCH_S with tasks, HOLD_S without); the others
        (held short by limits) stay for the next rounds, so they share a rate with this
        node's own workers."""
        now = self._rt.clock.monotonic()
        for r in remote:
            if r.free > 0 and r.more and now - r.at < _hold(r):
                self._inbox.append(r)
            else:
                self.answer(r)

    def answer(self, remote: RemoteConn) -> None:
        self.served += len(remote.tasks)
        ids = [t.id for t in remote.tasks]
        answer = Assigned(remote.ask.id, remote.ask.by, ids, remote.more)
        self._rt.bus.publish("assigned", _encode(answer).decode())


def _hold(remote: RemoteConn) -> float:
    """How long an ask held short by limits is served before it is answered."""
    return BATCH_S if remote.tasks else HOLD_S
