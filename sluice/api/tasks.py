"""Task routes: submit, read, wait for, follow, list, cancel, retry, delete (one by one
and by selector), and dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ..contract import (
    BatchOutcome,
    BatchRequest,
    BulkCount,
    DeadPage,
    DeadQuery,
    DeadSelector,
    RetryCount,
    SelectorBody,
    StateChange,
    SubmitOutcome,
    Task,
    TaskPage,
    TaskQuery,
    TaskSpec,
    Waiting,
    WaitQuery,
)
from ..engine.node import Node
from ..engine.notifier import next_task
from ..errors import Conflict, InvalidRequest
from ..model import PAUSED, READY, SCHEDULED, TERMINAL
from . import submit
from .route import Call, Events, Handler, Route
from .views import task_view

WAITING = (READY, SCHEDULED, PAUSED)
EVENTS_POLL_S = 0.5  # an event stream looks for the steps between ends this often
_encoder = msgspec.json.Encoder()


async def _view(node: Node, tenant_id: str, task_id: str, wait: float = 0.0) -> Task:
    detail = await node.tasks.detail(tenant_id, task_id, wait)
    return await _with_steps(node, tenant_id, task_view(detail.task, detail.attempts,
                                                        detail.history))  # fmt: skip


async def _with_steps(node: Node, tenant_id: str, view: Task) -> Task:
    """The tasks its end started (a chain's next steps): read only for functions with
    receivers (a dict lookup)."""
    if (tenant_id, view.function) in node.receivers.hooks:
        found = await node.notifier.deliveries(tenant_id, view.id)
        steps = [t for t in (next_task(n) for n in found) if t is not None]
        view = msgspec.structs.replace(view, next=steps)
    return view


async def get_task(call: Call) -> Task:
    detail = await call.node.tasks.detail(call.tenant, call.path["task_id"], 0.0)
    view = task_view(detail.task, detail.attempts, detail.history)
    task = await _with_steps(call.node, call.tenant, view)
    if task.state not in WAITING:
        return task
    waiting = await call.node.blockers.why(detail.task)
    return msgspec.structs.replace(task, waiting=waiting)


async def why_task(call: Call) -> Waiting:
    waiting = await call.node.blockers.why_task(call.tenant, call.path["task_id"])
    if waiting is None:
        raise Conflict("the task is not waiting: it is running or has ended",
                       code="task_not_waiting")  # fmt: skip
    return waiting


async def wait_result(call: Call) -> Task:
    query: WaitQuery = call.query
    most = call.node.settings.max_wait_s
    if query.timeout > most:
        raise InvalidRequest(f"timeout is at most {most:g} seconds", field="timeout")
    if query.timeout == 0:
        return await _view(call.node, call.tenant, call.path["task_id"])
    with call.limits.streams.hold(call.caller.actor):
        return await _view(call.node, call.tenant, call.path["task_id"], query.timeout)


async def task_events(call: Call) -> ServerSentEvent:
    node, tenant_id, task_id = call.node, call.tenant, call.path["task_id"]
    await node.tasks.get(tenant_id, task_id)  # a 404 before the stream starts
    streams, actor = call.limits.streams, call.caller.actor
    streams.check(actor)  # a 429 before it starts; the stream holds its slot below

    async def changes() -> AsyncIterator[ServerSentEventMessage]:
        with streams.hold(actor):
            last: tuple[str, int] | None = None
            wait = 0.0  # the first event is the state as it is now
            while True:
                # Wakes at once when the task ends; polls for the steps in between.
                task = await node.tasks.wait(tenant_id, task_id, wait)
                wait = EVENTS_POLL_S
                if (task.state, task.attempt) != last:
                    last = (task.state, task.attempt)
                    result = msgspec.Raw(task.result) if task.result is not None else None
                    change = StateChange(task.id, task.state, task.attempt, result, task.error)
                    yield ServerSentEventMessage(
                        data=_encoder.encode(change).decode(), event="state",
                        id=f"{task.attempt}:{task.state}",
                    )  # fmt: skip
                if task.state in TERMINAL:
                    return

    return ServerSentEvent(changes())


async def list_tasks(call: Call) -> TaskPage:
    query: TaskQuery = call.query
    page = await call.node.tasks.find(call.tenant, query.selector(), query.cursor or "",
                                      query.limit)  # fmt: skip
    return TaskPage(page, page[-1].id if len(page) == query.limit else None)


async def cancel_task(call: Call) -> Task:
    await call.node.tasks.cancel(call.tenant, call.path["task_id"])
    return await _view(call.node, call.tenant, call.path["task_id"])


async def retry_task(call: Call) -> Task:
    await call.node.tasks.retry(call.tenant, call.path["task_id"])
    return await _view(call.node, call.tenant, call.path["task_id"])


async def delete_task(call: Call) -> None:
    await call.node.tasks.delete(call.tenant, call.path["task_id"])


def bulk(verb: str) -> Handler:
    async def handler(call: Call) -> BulkCount:
        body: SelectorBody = call.body
        count = await call.node.tasks.bulk(call.tenant, verb, body.selector)
        await call.node.audit.record(call.caller.actor, call.tenant, f"tasks.{verb}",
                                     selector=body.selector, count=count)  # fmt: skip
        return BulkCount(count)

    return handler


async def list_dead(call: Call) -> DeadPage:
    query: DeadQuery = call.query
    selector = DeadSelector(query.function, query.since, query.until)
    page = await call.node.tasks.dead(call.tenant, selector, query.after or "", query.limit)
    return DeadPage(page, page[-1].id if len(page) == query.limit else None)


async def retry_dead(call: Call) -> RetryCount:
    selector: DeadSelector = call.body
    count = await call.node.tasks.retry_dead(call.tenant, selector)
    await call.node.audit.record(call.caller.actor, call.tenant, "dead.retry",
                                 selector=selector, count=count)  # fmt: skip
    return RetryCount(count)


_WEBHOOK_ERRORS = {
    403: "A webhook's address is one the server does not call (webhook_not_allowed)",
    409: "The task has webhooks and the tenant no signing secret (no_webhook_secret)",
}

TASK_ROUTES = [
    Route("POST", "/v1/tasks", "submitTask", "Submit a task", submit.one,
          {201: SubmitOutcome, 200: SubmitOutcome}, body=TaskSpec,
          body_bytes=submit.one_bytes, tags=("tasks",), errors=_WEBHOOK_ERRORS),
    Route("POST", "/v1/tasks/batch", "submitBatch", "Submit up to 1,000 tasks in one commit",
          submit.many, {201: BatchOutcome}, body=BatchRequest, body_bytes=submit.batch_bytes,
          tags=("tasks",), errors=_WEBHOOK_ERRORS),
    Route("GET", "/v1/tasks", "listTasks", "List and search tasks by selector, newest first",
          list_tasks, {200: TaskPage}, query=TaskQuery, tags=("tasks",)),
    Route("GET", "/v1/tasks/{task_id}", "getTask", "A task with its timeline and attempts",
          get_task, {200: Task}, tags=("tasks",)),
    Route("GET", "/v1/tasks/{task_id}/why", "whyTask",
          "Why a waiting task has not started yet (409 if it is running or has ended)",
          why_task, {200: Waiting}, tags=("tasks",)),
    Route("DELETE", "/v1/tasks/{task_id}", "deleteTask", "Delete a task that is not running",
          delete_task, {204: None}, tags=("tasks",)),
    Route("GET", "/v1/tasks/{task_id}/result", "waitResult",
          "Wait until the task ends (long-poll), or until timeout", wait_result, {200: Task},
          query=WaitQuery, tags=("tasks",)),
    Route("GET", "/v1/tasks/{task_id}/events", "taskEvents",
          "Server-sent events (event: state, data: StateChange) until the task ends",
          task_events, {200: Events({"state": StateChange})}, tags=("tasks",)),
    Route("POST", "/v1/tasks/{task_id}/cancel", "cancelTask",
          "Cancel a task that has not ended (a running one is stopped)", cancel_task,
          {200: Task}, tags=("tasks",)),
    Route("POST", "/v1/tasks/{task_id}/retry", "retryTask",
          "Run a dead task again (a new attempt series; history kept)", retry_task,
          {200: Task}, tags=("dead letters",)),
    Route("POST", "/v1/tasks/cancel", "cancelTasks", "Cancel every task a selector matches",
          bulk("cancel"), {200: BulkCount}, body=SelectorBody, tags=("tasks",)),
    Route("POST", "/v1/tasks/delete", "deleteTasks",
          "Delete every task a selector matches (running ones are skipped)", bulk("delete"),
          {200: BulkCount}, body=SelectorBody, tags=("tasks",)),
    Route("POST", "/v1/tasks/retry", "retryTasks", "Retry every dead task a selector matches",
          bulk("retry"), {200: BulkCount}, body=SelectorBody, tags=("tasks",)),
    Route("GET", "/v1/dead", "listDead", "Dead tasks, oldest first, a page at a time",
          list_dead, {200: DeadPage}, query=DeadQuery, tags=("dead letters",)),
    Route("POST", "/v1/dead/retry", "retryDead", "Retry every dead task a selector matches",
          retry_dead, {200: RetryCount}, body=DeadSelector, tags=("dead letters",)),
]  # fmt: skip
