"""AIMD for worker function pools (DESIGN §6 "Adaptive dispatch"; the policy is
policy/aimd.py, the same controller HTTP targets use).

A function's workers may share a downstream of unknown capacity: an API with a quota, a
database, a service that says "busy". A handler that gets such an answer raises
`sluice.Throttled` (optionally with retry_after); the task is retried by policy, and
the first such answer puts the function's pool (a tenant's workers of that function,
or a shared pool's) under an AIMD limit L on tasks in flight from this node, starting
at what was in flight then. From there L follows policy/aimd.py: cut by 0.7 when
throttles are at least 5 and 10 % of a window's answers, +1 a window while the pool has
backlog and uses half its limit. A Retry-After pauses the pool. The dispatcher claims a
limited function separately, at most its room (`rooms`), and for other nodes' workers
the ask carries the room (engine/asks.py).

A pool with no throttles for IDLE_S whose limit is no longer what holds it back (in
flight under half of L) is let go: functions that never see a throttle pay nothing but
a dictionary lookup per result. The limit is each node's own, like an HTTP target's.
"""

from __future__ import annotations

from collections import Counter

from ..model import ClaimedTask
from ..policy.aimd import ERROR, OK, THROTTLED, Aimd
from ..protocol import ResultItem
from .functions import Functions
from .queues import Queues
from .registry import TARGET_PREFIX, Registry, WorkerConn
from .runtime import Runtime

RECOUNT_TICKS = 10  # in flight is recounted from the workers' holdings once a second
IDLE_S = 60.0  # no throttle this long, and the limit not binding: the pool is let go
Key = tuple[str, str]  # (the workers' tenant, or SHARED for a shared pool; function)


class AdaptivePools:
    def __init__(
        self, rt: Runtime, registry: Registry, functions: Functions, queues: Queues
    ) -> None:
        self._rt = rt
        self._registry = registry
        self._functions = functions
        self._queues = queues
        self.limits: dict[Key, Aimd] = {}
        self._epochs: dict[str, int] = {}  # task id: the epoch it was sent in
        self._throttled_at: dict[Key, float] = {}
        self._backlog: set[Key] = set()  # the limit held the dispatcher back this window
        self.retired_cuts: Counter[str] = Counter()  # cuts of pools let go, by function
        self._ticks = 0
        self._rooms: dict[Key, int] = {}  # each limit's room at the last tick

    def rooms(self, tenant_id: str, functions: tuple[str, ...]) -> dict[str, int]:
        """How many more tasks each limited function of these may have in flight."""
        if not self.limits:
            return {}
        now = self._rt.clock.now()
        out = {}
        for f in functions:
            aimd = self.limits.get((tenant_id, f))
            if aimd is not None:
                out[f] = aimd.room(now)
        return out

    def held_back(self, tenant_id: str, function: str) -> None:
        """The dispatcher had more to send than the limit let it (growth needs backlog)."""
        self._backlog.add((tenant_id, function))

    def sent(self, tenant_id: str, tasks: list[ClaimedTask]) -> None:
        if not self.limits:
            return
        for t in tasks:
            aimd = self.limits.get((tenant_id, t.function))
            if aimd is not None:
                self._epochs[t.id] = aimd.sent()

    def answered(
        self, conn: WorkerConn, items: list[ResultItem], held: list[ClaimedTask | None]
    ) -> None:
        """Results from a worker: throttles start or cut a pool's limit, the rest count."""
        if conn.worker_id.startswith(TARGET_PREFIX):
            return  # an HTTP target runs its own AIMD (engine/targets.py)
        now = self._rt.clock.now()
        reopened: set[Key] = set()
        for i, (item, task) in enumerate(zip(items, held, strict=True)):
            if task is None:
                continue
            key = (conn.tenant_id, task.function)
            aimd = self.limits.get(key)
            throttled = item.outcome == "throttled"
            if throttled:
                if aimd is None:
                    # This answer and the rest of the frame's are no longer held by the
                    # connection but are still to be counted out.
                    answering = sum(
                        1 for t in held[i:] if t is not None and t.function == task.function
                    )
                    aimd = self._start(key, answering)
                self._throttled_at[key] = self._rt.clock.monotonic()
            if aimd is None:
                continue
            kind = OK if item.outcome == "ok" else THROTTLED if throttled else ERROR
            latency = None
            if item.started_at is not None and item.finished_at is not None:
                latency = item.finished_at - item.started_at
            before = aimd.room(now)
            aimd.answered(
                kind, self._epochs.pop(task.id, 0), now, latency_s=latency,
                retry_after_s=item.retry_after_s if throttled else None,
            )  # fmt: skip
            if before <= 0 < aimd.room(now):
                reopened.add(key)
        for tenant_id, function in reopened:
            # Its queue may have been marked idle while the room was 0: look again.
            self._queues.hint(tenant_id, None, [function])

    def _start(self, key: Key, answering: int) -> Aimd:
        """The pool's first throttle: a limit starting at what is in flight now."""
        tenant_id, function = key
        inflight = answering + sum(
            1
            for conn in self._registry
            if conn.tenant_id == tenant_id
            for t in conn.inflight.values()
            if t is not None and t.function == function
        )
        aimd = self.start(key, max(1, inflight))
        aimd.sent(inflight)  # their answers come back with epoch 0
        return aimd

    def start(self, key: Key, initial: int) -> Aimd:
        """Put a pool under a limit, as its first throttle does."""
        config = self._functions.cached(*key)
        maximum = config.max_concurrency if config is not None else None
        aimd = Aimd(self._rt.clock.now(), initial=initial, maximum=maximum)
        self.limits[key] = aimd
        self._throttled_at[key] = self._rt.clock.monotonic()
        return aimd

    def tick(self) -> None:
        """Close windows (every 0.1 s); let go of pools that no longer need a limit."""
        if not self.limits:
            return
        now, mono = self._rt.clock.now(), self._rt.clock.monotonic()
        self._ticks += 1
        if self._ticks % RECOUNT_TICKS == 0:
            self._recount()
        wake = False
        for key, aimd in list(self.limits.items()):
            if aimd.tick(now, key in self._backlog):
                self._backlog.discard(key)
            room = aimd.room(now)
            # A pause ended or the limit grew since the last tick: room the dispatcher
            # was not told of.
            if room > self._rooms.get(key, room):
                wake = True
            self._rooms[key] = room
            idle = mono - self._throttled_at.get(key, 0.0) >= IDLE_S
            if idle and aimd.inflight < aimd.limit / 2:
                self.retired_cuts[key[1]] += aimd.cuts  # the metric counts on
                del self.limits[key]
                self._throttled_at.pop(key, None)
                self._rooms.pop(key, None)
                wake = True
        if wake:
            self._queues.wake()

    def _recount(self) -> None:
        """In flight from what the workers hold: tasks handed back, reaped, lost with a
        worker or answered after a reconnect never come back through `answered`."""
        counts: Counter[Key] = Counter()
        held: set[str] = set()
        for conn in self._registry:
            if conn.worker_id.startswith(TARGET_PREFIX):
                continue
            for task in conn.inflight.values():
                if task is not None and (conn.tenant_id, task.function) in self.limits:
                    counts[(conn.tenant_id, task.function)] += 1
                    held.add(task.id)
        for key, aimd in self.limits.items():
            aimd.inflight = counts[key]
        for task_id in [t for t in self._epochs if t not in held]:
            del self._epochs[task_id]
