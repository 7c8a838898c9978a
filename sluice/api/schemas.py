"""Request and response bodies of the `/v1` API.

Task arguments and results are raw JSON end to end (`msgspec.Raw`): the server checks
their shape and size but never decodes them. Fields typed `Any` below carry raw JSON.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..engine.admission import TaskSpec
from ..model import (
    DEFAULT_PRIORITY,
    ApiKey,
    AttemptRecord,
    AuditEntry,
    Count,
    EventRecord,
    FunctionConfig,
    HttpTarget,
    Priority,
    Rate,
    RetryPolicy,
    SubmitResult,
    Tags,
    TaskRecord,
    Tenant,
    Timeout,
    Ttl,
)
from ..selector import Selector, TaskSummary
from ..store import DeadTask


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tasks: Annotated[
        list[TaskSpec], msgspec.Meta(min_length=1, extra_json_schema={"x-limit": "max_batch"})
    ]


class SubmitView(msgspec.Struct, frozen=True):
    id: str
    created: bool
    state: str
    run_at: float


class BatchView(msgspec.Struct, frozen=True):
    tasks: list[SubmitView]


class TimelineEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    at: float
    stage: str
    attempt: int | None = None
    detail: str | None = None


class AttemptView(msgspec.Struct, frozen=True):
    attempt: int
    worker: str | None
    dispatched_at: float | None
    started_at: float | None
    finished_at: float | None
    outcome: str
    error_type: str | None
    error_message: str | None
    traceback: str | None


class TaskView(msgspec.Struct, frozen=True):
    id: str
    function: str
    state: str
    priority: int
    key: str | None
    tags: list[str]
    attempt: int
    max_attempts: int
    args: Any
    kwargs: Any
    result: Any
    error: str | None
    timeout: float | None
    run_at: float
    expires_at: float | None
    created_at: float
    finished_at: float | None
    timeline: list[TimelineEntry]
    attempts: list[AttemptView]


class FunctionSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A function's config, as `PUT /v1/functions/{name}` takes it."""

    retry: RetryPolicy = RetryPolicy()
    timeout_s: Timeout | None = None
    priority: Priority = DEFAULT_PRIORITY
    ttl_s: Ttl | None = None
    tags: Tags = []
    rate: Rate | None = None
    burst: Count = 1
    max_concurrency: Count | None = None
    target: HttpTarget | None = None


class TargetState(msgspec.Struct, frozen=True):
    """Adaptive concurrency (AIMD, policy/aimd.py) of an HTTP target or of a worker pool,
    on the node that answered."""

    limit: float
    in_flight: int
    paused_until: float | None


class FunctionView(FunctionConfig, frozen=True):
    """A function's config; for an HTTP target its state, and for a function whose
    workers were throttled the limit their pool is under (engine/adaptive.py)."""

    target_state: TargetState | None = None
    pool_state: TargetState | None = None


class FunctionList(msgspec.Struct, frozen=True):
    functions: list[FunctionConfig]
    next: str | None = None  # pass as `after` for the next page; null on the last one


class DeadPage(msgspec.Struct, frozen=True):
    tasks: list[DeadTask]
    next: str | None  # pass as `after` for the next page; null on the last one


class StateChange(msgspec.Struct, frozen=True):
    """One server-sent event of `GET /v1/tasks/{id}/events`."""

    id: str
    state: str
    attempt: int
    result: Any
    error: str | None


class TaskPage(msgspec.Struct, frozen=True):
    tasks: list[TaskSummary]
    next: str | None  # pass as `cursor` for the next page; null on the last one


class BulkCount(msgspec.Struct, frozen=True):
    count: int


class RetryCount(msgspec.Struct, frozen=True):
    retried: int


TENANT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class TenantCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=TENANT_NAME)]


class TenantView(msgspec.Struct, frozen=True):
    id: str
    name: str
    api_key: str


class TenantList(msgspec.Struct, frozen=True):
    tenants: list[Tenant]


class NewKey(msgspec.Struct, frozen=True):
    id: str
    api_key: str  # shown this once; only its hash is stored


class KeyList(msgspec.Struct, frozen=True):
    keys: list[ApiKey]


class Health(msgspec.Struct, frozen=True):
    status: str
    workers: int


class _PayloadParts(msgspec.Struct):
    args: msgspec.Raw = msgspec.Raw(b"[]")
    kwargs: msgspec.Raw = msgspec.Raw(b"{}")


_payload_decoder = msgspec.json.Decoder(_PayloadParts)
_tags_decoder = msgspec.json.Decoder(list[str])


def submit_view(r: SubmitResult) -> SubmitView:
    return SubmitView(r.id, r.created, r.state, r.run_at)


def task_view(
    task: TaskRecord, attempts: list[AttemptRecord], events: list[EventRecord]
) -> TaskView:
    parts = _payload_decoder.decode(task.payload)
    return TaskView(
        id=task.id,
        function=task.function,
        state=task.state,
        priority=task.priority,
        key=task.key,
        tags=_tags_decoder.decode(task.tags) if task.tags else [],
        attempt=task.attempt,
        max_attempts=task.max_attempts,
        args=parts.args,
        kwargs=parts.kwargs,
        result=msgspec.Raw(task.result) if task.result is not None else None,
        error=task.error,
        timeout=task.timeout_s,
        run_at=task.run_at,
        expires_at=task.expires_at,
        created_at=task.created_at,
        finished_at=task.finished_at,
        timeline=timeline(task, attempts, events),
        attempts=[AttemptView(*msgspec.structs.astuple(a)[1:]) for a in attempts],
    )


def timeline(
    task: TaskRecord, attempts: list[AttemptRecord], events: list[EventRecord]
) -> list[TimelineEntry]:
    """Every stage the task went through, read from the timestamps the hot path writes."""
    out = [TimelineEntry(task.created_at, "submitted")]
    if task.run_at > task.created_at:
        out.append(TimelineEntry(task.created_at, "scheduled", detail=f"run_at {task.run_at}"))
    if task.state != "scheduled" or task.attempt > 0:
        # ready_at is rewritten by each retry; the first readiness is the original run_at.
        first = task.ready_at if task.attempt == 0 and task.ready_at else task.run_at
        out.append(TimelineEntry(first, "ready"))
    for a in attempts:
        if a.dispatched_at is not None:
            out.append(TimelineEntry(a.dispatched_at, "dispatched", a.attempt, a.worker))
        if a.started_at is not None:
            out.append(TimelineEntry(a.started_at, "started", a.attempt))
        if a.finished_at is not None:
            out.append(TimelineEntry(a.finished_at, "finished", a.attempt, a.outcome))
    finished = {a.attempt for a in attempts}
    if task.attempt > 0 and task.attempt not in finished and task.dispatched_at is not None:
        out.append(TimelineEntry(task.dispatched_at, "dispatched", task.attempt, task.lease_owner))
    for e in events:
        out.append(TimelineEntry(e.at, e.kind, detail=e.detail))
    if task.finished_at is not None:
        out.append(TimelineEntry(task.finished_at, task.state))
    out.sort(key=lambda entry: entry.at)
    return out


class ScheduleView(msgspec.Struct, frozen=True):
    """A cron schedule: its config and its firing state."""

    name: str
    function: str
    cron: str
    timezone: str
    args: msgspec.Raw
    kwargs: msgspec.Raw
    priority: int | None
    tags: list[str] | None
    catchup: str
    max_catchup_s: float
    paused: bool
    created_at: float
    last_fire_at: float
    next_fire_at: float | None
    fired: int
    skipped: int


class ScheduleList(msgspec.Struct, frozen=True):
    schedules: list[ScheduleView]


class PauseView(msgspec.Struct, frozen=True):
    """A pause rule: the waiting tasks its selector matches are held until it is lifted."""

    id: str
    selector: Selector
    created_at: float
    held: int | None = None  # how many waiting tasks it held when made (creation only)


class PauseList(msgspec.Struct, frozen=True):
    pauses: list[PauseView]


class ReleasedCount(msgspec.Struct, frozen=True):
    released: int


class SubscriptionView(msgspec.Struct, frozen=True):
    name: str
    topic: str
    function: str
    filter: dict[str, Any]
    priority: int | None
    tags: list[str] | None
    created_at: float


class SubscriptionList(msgspec.Struct, frozen=True):
    subscriptions: list[SubscriptionView]


class EventTask(msgspec.Struct, frozen=True):
    subscription: str
    id: str
    created: bool  # False: this event was posted before; the task is the first one's
    state: str


class EventBody(msgspec.Struct):
    """An event as documented: any JSON object; `id`, when given, deduplicates it."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None


class EventView(msgspec.Struct, frozen=True):
    id: str  # the event's id (given, or made up when the event had none)
    tasks: list[EventTask]


class AuditPage(msgspec.Struct, frozen=True):
    entries: list[AuditEntry]
    next: str | None  # pass as `before` for the next page; null on the last one
