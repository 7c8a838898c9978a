"""Tasks and dead letters: submits, what a task looks like, and the task lists' queries."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..model import (
    DAY_S,
    DEFAULT_MAX_ATTEMPTS,
    MAX_LIMIT,
)
from .fields import (
    Attempts,
    Backoff,
    Cursor,
    Delay,
    Epoch,
    FunctionName,
    JsonArray,
    JsonObject,
    Key,
    NotifyEvents,
    PageSize,
    Priority,
    SubmittedFunction,
    Tags,
    TargetUrl,
    Timeout,
    TraceParent,
    TraceState,
    Ttl,
)
from .selectors import Functions, Selector, SelectorTags, States
from .waiting import Waiting


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How failed attempts are retried (DESIGN §4): full-jitter exponential backoff."""

    max_attempts: Attempts = DEFAULT_MAX_ATTEMPTS
    base_s: Backoff = 1.0
    min_backoff_s: Backoff = 1.0
    cap_s: Backoff = 3600.0
    max_retry_duration_s: Ttl = DAY_S
    max_throttles: Annotated[int, msgspec.Meta(ge=0, le=MAX_LIMIT)] = 100
    """Flow-control retries (`Throttled`, HTTP 429) allowed on top of max_attempts."""


MAX_TASK_WEBHOOKS = 3


class TaskWebhook(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A receiver of this one task's ends, besides its function's webhooks: signed with
    the tenant's signing secret (`POST /v1/webhooks/secret`, docs/notifications.md)."""

    url: TargetUrl
    events: NotifyEvents = msgspec.field(
        default_factory=lambda: ["succeeded", "dead", "cancelled", "expired"]
    )


TaskWebhooks = Annotated[list[TaskWebhook], msgspec.Meta(max_length=MAX_TASK_WEBHOOKS)]


class TaskSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One task as a producer describes it (the body of `POST /v1/tasks`). At most one of
    `delay` and `run_at`, and of `ttl` and `expires_at` (api/openapi.py states it)."""

    function: SubmittedFunction
    args: JsonArray = msgspec.field(default_factory=lambda: msgspec.Raw(b"[]"))
    kwargs: JsonObject = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))
    delay: Delay | None = None
    run_at: float | None = None
    priority: Priority | None = None
    key: Key | None = None
    ttl: Ttl | None = None
    expires_at: float | None = None
    tags: Tags | None = None
    max_attempts: Attempts | None = None
    retry: RetryPolicy | None = None
    timeout: Timeout | None = None
    traceparent: TraceParent | None = None
    """The W3C creation context, stored with the task and never changed (the SDK sets it)."""
    tracestate: TraceState | None = None
    webhooks: TaskWebhooks | None = None
    """Webhooks of this task alone (at most 3), told of its ends like a function's."""


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of `POST /v1/tasks/batch`: tasks committed together."""

    tasks: Annotated[
        list[TaskSpec], msgspec.Meta(min_length=1, extra_json_schema={"x-limit": "max_batch"})
    ]


class SubmitOutcome(msgspec.Struct, frozen=True):
    """A submitted task: its id and state; `created` is False when its key named a task
    submitted before (that task is the one shown)."""

    id: str
    created: bool
    state: str
    run_at: float


class BatchOutcome(msgspec.Struct, frozen=True):
    tasks: list[SubmitOutcome]


class TimelineEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    at: float
    stage: str
    attempt: int | None = None
    detail: str | None = None


class Stages(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where an attempt's time went, in seconds (the waterfall; a stage not reached yet
    is absent): `queued` from ready to dispatched, less `held` (the part of that wait in
    which a limit held its function: a rate, a concurrency cap, a tenant's limits, an
    AIMD limit), `dispatched` from dispatched to started (delivery to the worker),
    `running` from started to finished, `reporting` from finished to the result written."""

    queued: float | None = None
    held: float | None = None
    dispatched: float | None = None
    running: float | None = None
    reporting: float | None = None


class Attempt(msgspec.Struct, frozen=True):
    attempt: int
    worker: str | None
    dispatched_at: float | None
    started_at: float | None
    finished_at: float | None
    outcome: str
    error_type: str | None
    error_message: str | None
    traceback: str | None
    ready_at: float | None = None
    recorded_at: float | None = None
    stages: Stages = Stages()
    held_s: float | None = None


class TaskProgress(msgspec.Struct, frozen=True):
    """How far a task's attempt got, as its handler last reported (`ctx.progress`):
    `done` of `total` (null when not known), a message, when the server received it, and
    which attempt reported it."""

    done: float
    total: float | None
    message: str | None
    at: float
    attempt: int


class Task(msgspec.Struct, frozen=True):
    """A task as the API shows it, with its timeline and attempts."""

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
    attempts: list[Attempt]
    follows: str | None = None
    """The task whose end started this one (a destination, docs/notifications.md)."""
    next: list[str] = []
    """The tasks this one's end started (its function's destinations), in order."""
    waiting: Waiting | None = None  # why it has not started yet (ready, scheduled, paused)
    webhooks: list[TaskWebhook] = []
    """Its own webhooks, given at submit (its function's are in the function's config)."""
    progress: TaskProgress | None = None
    """The latest progress its handler reported (`ctx.progress`), while it runs and after
    it ends; null if it never reported any."""


class TaskSummary(msgspec.Struct, frozen=True):
    """A task as lists show it."""

    id: str
    function: str
    state: str
    priority: int
    attempt: int
    created_at: float
    finished_at: float | None
    key: str | None
    tags: list[str]


class TaskPage(msgspec.Struct, frozen=True):
    tasks: list[TaskSummary]
    next: str | None  # pass as `cursor` for the next page; null on the last one


class StateChange(msgspec.Struct, frozen=True):
    """One server-sent event of `GET /v1/tasks/{id}/events`."""

    id: str
    state: str
    attempt: int
    result: Any
    error: str | None


class BulkCount(msgspec.Struct, frozen=True):
    count: int


# Dead letters ----------------------------------------------------------------------


class DeadSelector(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which dead tasks: of a function, ended within [since, until) (epoch seconds)."""

    function: str | None = None
    since: float | None = None
    until: float | None = None


class DeadTask(msgspec.Struct, frozen=True):
    id: str
    function: str
    attempt: int
    error: str | None
    finished_at: float | None
    error_type: str | None = None  # the last attempt's exception type (or HTTP status class)


class DeadPage(msgspec.Struct, frozen=True):
    tasks: list[DeadTask]
    next: str | None  # pass as `after` for the next page; null on the last one


class RetryCount(msgspec.Struct, frozen=True):
    retried: int


class TaskQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/tasks`: a selector (list fields repeat: `?state=ready&state=running`),
    a cursor (the `next` of the page before) and a page size."""

    function: Functions | None = None
    state: States | None = None
    tag: SelectorTags | None = None
    priority_min: Priority | None = None
    priority_max: Priority | None = None
    created_after: Epoch | None = None
    created_before: Epoch | None = None
    key: Key | None = None
    cursor: Cursor | None = None
    limit: PageSize = 100

    def selector(self) -> Selector:
        return Selector(
            function=self.function, state=self.state, tags=self.tag,
            priority_min=self.priority_min, priority_max=self.priority_max,
            created_after=self.created_after, created_before=self.created_before, key=self.key,
        ).validate()  # fmt: skip


class WaitQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/tasks/{id}/result`: how long to wait for the end, in seconds."""

    timeout: Annotated[float, msgspec.Meta(ge=0, extra_json_schema={"x-limit": "max_wait_s"})] = (
        30.0
    )


class DeadQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/dead`: of a function, ended within [since, until), after a cursor."""

    function: FunctionName | None = None
    since: Epoch | None = None
    until: Epoch | None = None
    after: Cursor | None = None
    limit: PageSize = 100
