"""Delayed tasks: promoted from the store's time index when due (DESIGN §5 "Storage").

Every `promote_interval_s` the timers leader promotes the due ones in batches. Tasks
due within `timer_horizon_s` are also held in a small in-memory heap on the node that
made or read them, and promoted at their exact time, so a sub-second delay is on time;
losing the heap (a crash) only falls back to the interval's precision. A double
promotion is harmless (the store checks the state). Promoted tasks get their fair start
tags, in due order, then the dispatcher hears of them; those the heap fires that an idle
worker may take at once are leased to it as they become ready (direct dispatch).

Leasing is done `delay_lead_s` (10 ms) ahead: the heap fires a task that early, and if
an idle worker of its tenant may take it, it is leased to that worker with the task's
run_at as its `start_at`, and the worker starts it then. The write and the push happen
before the task is due instead of after, so it starts on time (Celery gets its delayed
tasks' precision by holding them in worker memory, not durably; here the task is in the
store all along, leased like any running task, and reaped back if the worker dies). A
task no worker takes early is tried again a few times within its lead (a worker is
busy for a moment while a round claims for it), and otherwise waits for its time and is
promoted then, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging

from ..store import Promoted
from .direct import DirectDispatch
from .fairness import Fairness
from .queues import Queues
from .runtime import Runtime

log = logging.getLogger("sluice.delays")

PROMOTE_BATCH = 5000
HEAP_LOAD_LIMIT = 10_000
# A task fired ahead that no worker could take is tried again a few times within its
# lead: a worker is not idle for a moment while a dispatch round claims for it (the 1 s
# safety net's round holds its free slots until the store answers), and a task fired in
# that moment lost its lead (on a loaded machine with PostgreSQL, tests/integration/
# test_delayed_lead.py). About RETRIES tries, none closer than RETRY_MIN_S.
RETRIES = 5
RETRY_MIN_S = 0.002


class Delays:
    def __init__(self, rt: Runtime, fairness: Fairness, queues: Queues) -> None:
        self._rt = rt
        self._fairness = fairness
        self._queues = queues
        self._heap: list[tuple[float, float, str, str]] = []  # fire at, run_at, tenant, id
        self._in_heap: set[str] = set()
        self._changed = asyncio.Event()
        # Set by the node: due tasks an idle worker may take are leased as they fire.
        self.direct: DirectDispatch | None = None

    def schedule(self, run_at: float, tenant_id: str, task_id: str) -> None:
        """Hold a delayed task in memory if it is due within the horizon."""
        rt = self._rt
        if run_at > rt.clock.now() + rt.settings.timer_horizon_s or task_id in self._in_heap:
            return
        self._in_heap.add(task_id)
        lead = rt.settings.delay_lead_s if self.direct is not None else 0.0
        heapq.heappush(self._heap, (run_at - lead, run_at, tenant_id, task_id))
        if self._heap[0][3] == task_id:
            self._changed.set()

    async def promote_once(self) -> int:
        """Promote what is due from the store, then load the next seconds into the heap
        (a timers leader's job)."""
        rt = self._rt
        total = 0
        while True:
            promoted = await rt.store.promote_due(rt.clock.now(), PROMOTE_BATCH)
            total += len(promoted)
            await self._tag_and_notify(promoted)
            if len(promoted) < PROMOTE_BATCH:
                break
        horizon = rt.clock.now() + rt.settings.timer_horizon_s
        for run_at, tenant_id, task_id in await rt.store.due_soon(horizon, HEAP_LOAD_LIMIT):
            self.schedule(run_at, tenant_id, task_id)
        return total

    async def run(self) -> None:
        """Promote the heap's tasks at their exact time, until cancelled."""
        clock = self._rt.clock
        while True:
            if not self._heap:
                self._changed.clear()
                await self._changed.wait()
                continue
            wait = self._heap[0][0] - clock.now()
            if wait > 0:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await clock.wait_for(self._changed.wait(), wait)
                continue
            await self.fire_due()

    async def fire_due(self) -> int:
        """Lease to idle workers the heap's tasks due within the lead, promote those due
        now; the rest wait in the heap for their time. Returns how many were leased or
        became ready."""
        now = self._rt.clock.now()
        fired = []
        while self._heap and self._heap[0][0] <= now:
            fired.append(heapq.heappop(self._heap))
        if not fired:
            return 0
        started = (
            await self._lease_due([(t, i, run_at) for _, run_at, t, i in fired], now)
            if self.direct is not None
            else set()
        )
        due = []
        for _, run_at, tenant_id, task_id in fired:
            if task_id in started:
                self._in_heap.discard(task_id)
            elif run_at <= now:
                self._in_heap.discard(task_id)
                due.append((tenant_id, task_id))
            else:  # fired early, no worker took it: try again, and at its time promote it
                again = now + max(RETRY_MIN_S, self._rt.settings.delay_lead_s / RETRIES)
                heapq.heappush(self._heap, (min(run_at, again), run_at, tenant_id, task_id))
        if not due:
            return len(started)
        try:
            promoted = await self._rt.store.promote_tasks([t for _, t in due], now)
        except Exception:
            log.exception("promoting %d due tasks failed; the interval will", len(due))
            return len(started)
        await self._tag_and_notify(promoted)
        return len(started) + len(promoted)

    async def _lease_due(self, due: list[tuple[str, str, float]], now: float) -> set[str]:
        """Direct dispatch of due tasks (engine/direct.py): those an idle worker of
        their tenant may take at once are made ready and leased to it in one write."""
        assert self.direct is not None
        by_tenant: dict[str, list[tuple[str, float]]] = {}
        for tenant_id, task_id, run_at in due:
            by_tenant.setdefault(tenant_id, []).append((task_id, run_at))
        started: set[str] = set()
        for tenant_id, tasks in by_tenant.items():
            direct = self.direct.plan_due(tenant_id)
            if direct is None:
                continue
            # Ahead of time only to workers that wait for start_at (protocol 2); an
            # older worker takes only what is due, and no write is made for none.
            ahead = direct.conn.protocol >= 2
            lead = self._rt.settings.delay_lead_s if ahead else 0.0
            ids = [t for t, run_at in tasks if ahead or run_at <= now]
            if not ids:
                self.direct.cancel(direct)
                continue
            try:
                claimed = await self._rt.store.promote_leased(
                    tenant_id, ids, now, direct.conn.worker_id, direct.functions,
                    direct.slots, self._rt.settings.lease_s, due_by=now + lead,
                )  # fmt: skip
            except Exception:
                self.direct.cancel(direct)
                log.exception("leasing %d due tasks failed; they are promoted", len(ids))
                continue
            await self.direct.deliver(direct, claimed)
            started.update(t.id for t in claimed)
        return started

    async def _tag_and_notify(self, promoted: list[Promoted]) -> None:
        """Fair tags for tasks that just became ready, then wake the dispatcher for them;
        ready they are either way, so a failed retag must not keep them unseen."""
        try:
            await self._fairness.promoted(promoted)
        except Exception:
            log.exception(
                "tagging %d promoted tasks failed; they keep their submit tags", len(promoted)
            )
        finally:
            by_tenant: dict[str, tuple[set[int], set[str]]] = {}
            for p in promoted:
                levels, functions = by_tenant.setdefault(p.tenant_id, (set(), set()))
                levels.add(p.priority)
                functions.add(p.function)
            for tenant_id, (levels, functions) in by_tenant.items():
                self._queues.notify(tenant_id, levels, functions)
