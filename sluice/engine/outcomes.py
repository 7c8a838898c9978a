"""What follows the end of an attempt or a task: the finishes the gateway wrote (a retry
goes back to wait, a terminal task ends), tasks that expired, and who is waiting for an
end (long-polls and event streams).

An end this node sees wakes its waiters at once and is told to the other nodes ("done"
on the bus); a waiter also re-reads the task now and then, since in a cluster a hint
may be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

from ..errors import NotFound
from ..model import CANCELLED, DEAD, EXPIRED, READY, SCHEDULED, TERMINAL, Finish, TaskRecord
from ..store import ACCEPTED, Reaped
from .backpressure import Backpressure
from .delays import Delays
from .meters import Meters
from .queues import Queues
from .receivers import Receivers
from .runtime import Runtime

REMOTE_WAIT_S = 0.5  # a long-poll re-reads this often, for ends it was not told about
EXPIRE_BATCH = 5000


class Outcomes:
    def __init__(
        self, rt: Runtime, queues: Queues, delays: Delays, backpressure: Backpressure,
        meters: Meters | None = None,
        receivers: Receivers | None = None,
    ) -> None:  # fmt: skip
        self._rt = rt
        self._meters = meters or Meters(rt)
        self._hooks = receivers.hooks if receivers is not None else {}
        self._queues = queues
        self._delays = delays
        self._backpressure = backpressure
        self._waiters: defaultdict[str, list[asyncio.Future[None]]] = defaultdict(list)
        # One node (the local bus) sees every end itself; in a cluster a hint may be lost.
        self._poll_s: float | None = None if rt.bus.local else REMOTE_WAIT_S

    # -- ends ----------------------------------------------------------------------

    def finished(self, finishes: list[Finish], outcomes: list[str]) -> None:
        """Finishes the gateway wrote (the gateway's `Finishes` interface)."""
        requeued = set()
        accepted = 0
        for f, outcome in zip(finishes, outcomes, strict=True):
            if outcome != ACCEPTED:
                continue
            accepted += 1
            if f.next_state in TERMINAL:
                self.ended(f.task_id)
            elif f.next_state == READY:
                requeued.add(f.tenant_id)
            elif f.next_state == SCHEDULED and f.run_at is not None:
                self._delays.schedule(f.run_at, f.tenant_id, f.task_id)
        self._backpressure.drained(accepted)
        for tenant_id in requeued:
            self._queues.notify(tenant_id)

    def reaped(self, reaped: list[Reaped]) -> None:
        self._meters.lost(len(reaped))
        self._meters.ended((r.tenant_id for r in reaped if r.state == DEAD), DEAD)
        for r in reaped:
            if r.state in TERMINAL:
                self.ended(r.task_id)

    async def expire_once(self) -> int:
        """Tasks not started by their expires_at become expired (a timer's job)."""
        now = self._rt.clock.now()
        expired = await self._rt.store.expire_tasks(now, EXPIRE_BATCH, self._hooks)
        for _tenant_id, task_id in expired:
            self.ended(task_id)
        self._meters.ended((tenant_id for tenant_id, _ in expired), EXPIRED)
        return len(expired)

    def cancelled(self, tenant_id: str, n: int) -> None:
        """Tasks cancelled by hand (each also ends: `ended`)."""
        self._meters.ended([tenant_id] * n, CANCELLED)

    def ended(self, task_id: str) -> None:
        self.wake(task_id)
        self._rt.bus.publish("done", task_id)

    def wake(self, task_id: str) -> None:
        """Wake who waits for this task (an end here, or another node's "done" hint)."""
        for waiter in self._waiters.get(task_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    # -- waiting -------------------------------------------------------------------

    async def wait(self, tenant_id: str, task_id: str, timeout: float) -> TaskRecord:
        """The task once it is terminal, or as it is when `timeout` runs out.

        Woken at once by an end this node sees or hears of on the bus; in a cluster it
        also re-reads every REMOTE_WAIT_S, in case a hint from another node was lost."""
        clock = self._rt.clock
        deadline = clock.monotonic() + timeout
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters[task_id].append(waiter)  # before the read, so no end slips between
        try:
            while True:
                task = await self._read(tenant_id, task_id)
                left = deadline - clock.monotonic()
                if task.state in TERMINAL or left <= 0:
                    return task
                if waiter.done():
                    # Woken, yet not ended on this read: the read may have begun before
                    # the end was written. Wait afresh, but read again first.
                    self._waiters[task_id].remove(waiter)
                    waiter = loop.create_future()
                    self._waiters[task_id].append(waiter)
                    continue
                poll = left if self._poll_s is None else min(left, self._poll_s)
                with contextlib.suppress(TimeoutError):
                    await clock.wait_for(asyncio.shield(waiter), poll)
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
                if not waiters:
                    del self._waiters[task_id]

    async def _read(self, tenant_id: str, task_id: str) -> TaskRecord:
        task = await self._rt.store.get_task(tenant_id, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}", code="task_not_found", field="task_id")
        return task

    def close(self) -> None:
        """The node stops: every waiter gives up."""
        for waiters in self._waiters.values():
            for w in waiters:
                if not w.done():
                    w.cancel()
