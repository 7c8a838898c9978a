"""`GET /v1/tasks/{id}/logs`: a task's captured lines, a page at a time, long-polled with
`wait`; `GET /v1/tasks/{id}/logs/stream` follows them as server-sent events until the
task ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ..contract import LEVELS, LogEnd, LogEntry, LogPage, LogsQuery
from ..engine.node import Node
from ..errors import InvalidRequest
from ..model import TERMINAL
from ..store import LogQuery
from .route import Call, Events, Route

FOLLOW_POLL_S = 1.0  # lines that reach another node are found this often
_END = msgspec.json.encode(LogEnd()).decode()
_encoder = msgspec.json.Encoder()


def _store_query(query: LogsQuery) -> LogQuery:
    after = (0, -1)
    if query.cursor is not None:
        attempt, seq = query.cursor.split(".")
        after = (int(attempt), int(seq))
    level = LEVELS[query.level.lower()] if query.level else 0
    return LogQuery(after, query.attempt, level, query.q, query.limit)


def _cursor(lines: list[LogEntry], after: tuple[int, int]) -> tuple[str, tuple[int, int]]:
    if lines:
        after = (lines[-1].attempt, lines[-1].seq)
    return f"{after[0]}.{after[1]}", after


async def _page(node: Node, tenant_id: str, task_id: str, q: LogQuery) -> LogPage:
    lines = await node.logs.read(tenant_id, task_id, q)
    cursor, _ = _cursor(lines, q.after)
    return LogPage(lines, cursor, len(lines) >= q.limit)


async def task_logs(call: Call) -> LogPage:
    query: LogsQuery = call.query
    node, tenant_id, task_id = call.node, call.tenant, call.path["task_id"]
    most = node.settings.max_wait_s
    if query.wait > most:
        raise InvalidRequest(f"wait is at most {most:g} seconds", field="wait")
    task = await node.tasks.get(tenant_id, task_id)  # 404 for another tenant's or no task
    q = _store_query(query)
    page = await _page(node, tenant_id, task_id, q)
    if page.lines or query.wait == 0 or task.state in TERMINAL:
        return page
    with call.limits.streams.hold(call.caller.actor):
        await node.logs.news(task_id, query.wait)
        return await _page(node, tenant_id, task_id, q)


async def follow_logs(call: Call) -> ServerSentEvent:
    node, tenant_id, task_id = call.node, call.tenant, call.path["task_id"]
    await node.tasks.get(tenant_id, task_id)  # a 404 before the stream starts
    q = _store_query(call.query)
    streams, actor = call.limits.streams, call.caller.actor
    streams.check(actor)  # a 429 before the stream starts; it holds its slot below

    async def lines() -> AsyncIterator[ServerSentEventMessage]:
        nonlocal q
        with streams.hold(actor):
            while True:
                ended = (await node.tasks.get(tenant_id, task_id)).state in TERMINAL
                page = await node.logs.read(tenant_id, task_id, q)
                for entry in page:
                    cursor, _ = _cursor([entry], q.after)
                    data = _encoder.encode(entry).decode()
                    yield ServerSentEventMessage(data=data, event="log", id=cursor)
                _, after = _cursor(page, q.after)
                q = msgspec.structs.replace(q, after=after)
                if len(page) >= q.limit:
                    continue
                if ended:  # read after the end was seen: nothing more will come
                    yield ServerSentEventMessage(data=_END, event="end")
                    return
                await node.logs.news(task_id, FOLLOW_POLL_S)

    return ServerSentEvent(lines())


LOG_ROUTES = [
    Route("GET", "/v1/tasks/{task_id}/logs", "taskLogs",
          "A task's captured log lines (logging records, stdout, stderr), a page at a time; "
          "`wait` long-polls for new ones", task_logs, {200: LogPage}, query=LogsQuery,
          tags=("tasks",)),
    Route("GET", "/v1/tasks/{task_id}/logs/stream", "followTaskLogs",
          "Server-sent events of a task's log lines (event: log, data: LogEntry, id: the "
          "cursor) until the task ends (event: end)", follow_logs,
          {200: Events({"log": LogEntry, "end": LogEnd})}, query=LogsQuery, tags=("tasks",)),
]  # fmt: skip
