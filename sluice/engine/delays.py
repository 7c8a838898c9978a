"""Delayed tasks: promoted from the store's time index when due (DESIGN §5 "Storage").

Every `promote_interval_s` the timers leader promotes the due ones in batches. Tasks
due within `timer_horizon_s` are also held in a small in-memory heap on the node that
made or read them, and promoted at their exact time, so a sub-second delay is on time;
losing the heap (a crash) only falls back to the interval's precision. A double
promotion is harmless (the store checks the state). Promoted tasks get their fair start
tags, in due order, then the dispatcher hears of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging

from ..store import Promoted
from .fairness import Fairness
from .queues import Queues
from .runtime import Runtime

log = logging.getLogger("sluice.delays")

PROMOTE_BATCH = 5000
HEAP_LOAD_LIMIT = 10_000


class Delays:
    def __init__(self, rt: Runtime, fairness: Fairness, queues: Queues) -> None:
        self._rt = rt
        self._fairness = fairness
        self._queues = queues
        self._heap: list[tuple[float, str, str]] = []
        self._in_heap: set[str] = set()
        self._changed = asyncio.Event()

    def schedule(self, run_at: float, tenant_id: str, task_id: str) -> None:
        """Hold a delayed task in memory if it is due within the horizon."""
        rt = self._rt
        if run_at > rt.clock.now() + rt.settings.timer_horizon_s or task_id in self._in_heap:
            return
        self._in_heap.add(task_id)
        heapq.heappush(self._heap, (run_at, tenant_id, task_id))
        if self._heap[0][2] == task_id:
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
        """Promote the heap's tasks that are due now; returns how many became ready."""
        now = self._rt.clock.now()
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, _tenant, task_id = heapq.heappop(self._heap)
            self._in_heap.discard(task_id)
            due.append(task_id)
        if not due:
            return 0
        try:
            promoted = await self._rt.store.promote_tasks(due, now)
        except Exception:
            log.exception("promoting %d due tasks failed; the interval will", len(due))
            return 0
        await self._tag_and_notify(promoted)
        return len(promoted)

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
