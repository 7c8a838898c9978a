"""The task verbs: read, list, wait for, cancel, delete and retry tasks, one by one or by
selector (DESIGN §3), and dead letters.

Verbs by selector work a chunk per commit, so a hundred thousand tasks never hold the
writer for long. Cancelling a running task tells its worker to stop it (the worker's
node, through the bus, if it is connected elsewhere).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import msgspec

from ..contract import DeadSelector, DeadTask, Selector, TaskSummary
from ..errors import Conflict, NotFound
from ..model import CANCELLED, SHARED, AttemptRecord, HistoryEntry, TaskRecord
from ..protocol import Cancel
from .functions import Functions
from .outcomes import Outcomes
from .queues import Queues
from .receivers import Receivers
from .registry import POOL_PREFIX, Registry
from .runtime import Runtime

CHUNK = 1000  # tasks per commit in a verb by selector
_encoder = msgspec.json.Encoder()


class TaskDetail(msgspec.Struct, frozen=True):
    """A task with its attempts and its history, as its view is made from them."""

    task: TaskRecord
    attempts: list[AttemptRecord]
    history: list[HistoryEntry]


class Tasks:
    def __init__(
        self,
        rt: Runtime,
        functions: Functions,
        queues: Queues,
        outcomes: Outcomes,
        registry: Registry,
        receivers: Receivers | None = None,
    ) -> None:
        self._rt = rt
        self._hooks = receivers.hooks if receivers is not None else {}
        self._functions = functions
        self._queues = queues
        self._outcomes = outcomes
        self._registry = registry

    # -- reads ---------------------------------------------------------------------

    async def get(self, tenant_id: str, task_id: str) -> TaskRecord:
        task = await self._rt.store.get_task(tenant_id, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}", code="task_not_found", field="task_id")
        return task

    async def detail(self, tenant_id: str, task_id: str, wait: float = 0.0) -> TaskDetail:
        """The task (once it ends, or `wait` seconds), its attempts and its history."""
        task = (
            await self.wait(tenant_id, task_id, wait)
            if wait > 0
            else await self.get(tenant_id, task_id)
        )
        store = self._rt.store
        attempts = await store.list_attempts(tenant_id, task_id)
        history = await store.list_history(tenant_id, task_id)
        return TaskDetail(task, attempts, history)

    async def wait(self, tenant_id: str, task_id: str, timeout: float) -> TaskRecord:
        return await self._outcomes.wait(tenant_id, task_id, timeout)

    async def find(
        self, tenant_id: str, selector: Selector, cursor: str, limit: int
    ) -> list[TaskSummary]:
        """A page of the tasks the selector matches, newest first, below `cursor`."""
        return await self._rt.store.list_tasks(tenant_id, selector.validate(), cursor, limit)

    async def dead(
        self, tenant_id: str, selector: DeadSelector, after: str, limit: int
    ) -> list[DeadTask]:
        """A page of dead tasks, oldest first, after `after`."""
        return await self._rt.store.list_dead(tenant_id, selector, after, limit)

    # -- verbs ---------------------------------------------------------------------

    async def cancel(self, tenant_id: str, task_id: str) -> TaskRecord:
        """Cancel a task that has not ended; a running one's worker is told to stop it."""
        cancelled = await self._cancel(tenant_id, [task_id])
        task = await self.get(tenant_id, task_id)
        if not cancelled and task.state != CANCELLED:
            raise Conflict(
                f"task {task_id} already ended {task.state}", code="task_ended", field="task_id"
            )
        return task

    async def delete(self, tenant_id: str, task_id: str) -> None:
        task = await self.get(tenant_id, task_id)
        if not await self._rt.store.delete_tasks(tenant_id, [task_id]):
            raise Conflict(
                f"task {task_id} is {task.state}; cancel it before deleting it",
                code="task_running",
                field="task_id",
            )

    async def retry(self, tenant_id: str, task_id: str) -> TaskRecord:
        """Run a dead task again: a new attempt series; its history stays."""
        task = await self.get(tenant_id, task_id)
        if not await self._retry(tenant_id, [task_id]):
            raise Conflict(
                f"task {task_id} is {task.state}; only dead tasks are retried",
                code="task_not_dead",
                field="task_id",
            )
        return await self.get(tenant_id, task_id)

    async def bulk(self, tenant_id: str, verb: str, selector: Selector) -> int:
        """Cancel, delete or retry every task the selector matches, a chunk per commit;
        returns how many."""
        selector.validate()
        actions: dict[str, Callable[[str, list[str]], Awaitable[list[str]]]] = {
            "cancel": self._cancel,
            "delete": self._rt.store.delete_tasks,
            "retry": self._retry,
        }
        act = functools.partial(actions[verb], tenant_id)
        total, before = 0, ""
        while True:
            page = await self._rt.store.list_tasks(tenant_id, selector, before, CHUNK)
            if page:
                total += len(await act([t.id for t in page]))
                before = page[-1].id
            if len(page) < CHUNK:
                return total

    async def count(self, tenant_id: str, selector: Selector, cap: int) -> int:
        """How many tasks the selector matches, counted up to `cap` (the console shows
        "10,000+"): keyset pages of the list's index, never a COUNT over the tasks."""
        selector.validate()
        total, before = 0, ""
        while total < cap:
            page = await self._rt.store.list_tasks(
                tenant_id, selector, before, min(CHUNK, cap - total)
            )
            total += len(page)
            if not page or total >= cap:
                break
            before = page[-1].id
        return min(total, cap)

    async def retry_ids(self, tenant_id: str, task_ids: list[str]) -> int:
        """Retry those of the tasks that are dead (a dead-letter group, from the console)."""
        total = 0
        for start in range(0, len(task_ids), CHUNK):
            total += len(await self._retry(tenant_id, task_ids[start : start + CHUNK]))
        return total

    async def retry_dead(self, tenant_id: str, selector: DeadSelector) -> int:
        """Retry every dead task the selector matches, a chunk per commit."""
        total, after = 0, ""
        while True:
            chunk = await self._rt.store.list_dead(tenant_id, selector, after, CHUNK)
            if not chunk:
                return total
            total += len(await self._retry(tenant_id, [t.id for t in chunk]))
            after = chunk[-1].id

    async def _cancel(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        rt = self._rt
        cancelled = await rt.store.cancel_tasks(tenant_id, task_ids, rt.clock.now(), self._hooks)
        stop: dict[str, list[str]] = {}
        self._outcomes.cancelled(tenant_id, len(cancelled))
        for c in cancelled:
            self._outcomes.ended(c.task_id)
            if c.worker:
                stop.setdefault(c.worker, []).append(c.task_id)
        for worker, ids in stop.items():
            if not self.stop(tenant_id, worker, ids):
                # Connected to another node, perhaps: tell them all.
                rt.bus.publish("cancel", f"{tenant_id}|{worker}|{','.join(ids)}")
        return [c.task_id for c in cancelled]

    async def _retry(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        functions = await self._functions.usable(tenant_id)
        allowance = {name: f.retry.max_attempts for name, f in functions.items()}
        rt = self._rt
        retried = await rt.store.retry_dead(tenant_id, task_ids, allowance, rt.clock.now())
        if retried:
            self._queues.notify(tenant_id)
        return retried

    # -- stopping running tasks ----------------------------------------------------

    def stop(self, tenant_id: str, worker: str, task_ids: list[str]) -> bool:
        """Tell a worker connected here to stop these tasks; False if it is not here."""
        if worker.startswith(POOL_PREFIX):  # a shared pool's worker runs the task
            tenant_id = SHARED
        conn = self._registry.get(tenant_id, worker)
        if conn is None:
            return False
        conn.send(_encoder.encode(Cancel(task_ids)))
        return True

    def stop_hint(self, item: str) -> None:
        """Another node cancelled tasks whose worker may be connected here."""
        tenant_id, worker, ids = item.split("|", 2)
        self.stop(tenant_id, worker, ids.split(","))
