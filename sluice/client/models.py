"""What the API answers, as the client reads it.

These mirror the server's response bodies (sluice/api/schemas.py) on purpose: the client
imports no server code, so `pip install sluice` stays small.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import msgspec


class SubmitOutcome(msgspec.Struct, frozen=True):
    id: str
    created: bool
    state: str
    run_at: float


class _Batch(msgspec.Struct, frozen=True):
    tasks: list[SubmitOutcome]


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


class TimelineEntry(msgspec.Struct, frozen=True):
    at: float
    stage: str
    attempt: int | None = None
    detail: str | None = None


class Task(msgspec.Struct, frozen=True):
    """A task as the API shows it."""

    id: str
    function: str
    state: str
    priority: int
    key: str | None
    tags: list[str]
    attempt: int
    max_attempts: int
    args: list[Any]
    kwargs: dict[str, Any]
    result: Any
    error: str | None
    timeout: float | None
    run_at: float
    expires_at: float | None
    created_at: float
    finished_at: float | None
    timeline: list[TimelineEntry]
    attempts: list[Attempt]


class DeadTask(msgspec.Struct, frozen=True):
    id: str
    function: str
    attempt: int
    error: str | None
    finished_at: float | None


class DeadPage(msgspec.Struct, frozen=True):
    tasks: list[DeadTask]
    next: str | None


class RetryCount(msgspec.Struct, frozen=True):
    retried: int


class TaskSummary(msgspec.Struct, frozen=True):
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
    next: str | None


class BulkCount(msgspec.Struct, frozen=True):
    count: int


class FunctionRetry(msgspec.Struct, frozen=True):
    """A function's retry policy (see `sluice.RetryPolicy`)."""

    max_attempts: int = 25
    base_s: float = 1.0
    min_backoff_s: float = 1.0
    cap_s: float = 3600.0
    max_retry_duration_s: float = 86400.0
    max_throttles: int = 100


class Function(msgspec.Struct, frozen=True):
    """A function's config, as `GET /v1/functions` and `PUT /v1/functions/{name}` show it."""

    name: str
    retry: FunctionRetry = FunctionRetry()
    timeout_s: float | None = None
    priority: int = 5
    ttl_s: float | None = None
    tags: list[str] = []
    rate: float | None = None  # starts per second, cluster-wide; None: no limit
    burst: int = 1
    max_concurrency: int | None = None  # running at once, cluster-wide; None: no limit


class _FunctionList(msgspec.Struct, frozen=True):
    functions: list[Function]
    next: str | None = None


class ScheduleSpec(TypedDict, total=False):
    """What `client.schedules.set` sends. `function` and `cron` are required; left out,
    `timezone` is "UTC", `args` and `kwargs` are empty, `priority` and `tags` are unset,
    `catchup` is "all" and `max_catchup_s` 600."""

    function: str
    cron: str  # croniter syntax: five fields, or six with seconds first
    timezone: str  # IANA, e.g. "Europe/Berlin"
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int | None
    tags: list[str] | None
    catchup: Literal["all", "latest", "none"]
    max_catchup_s: float


class Schedule(msgspec.Struct, frozen=True):
    """A cron schedule, as `GET /v1/schedules/{name}` shows it: its spec and its firing
    state. Each fire submits a task keyed `sluice:cron:{name}:{fire_epoch_seconds}`."""

    name: str
    function: str
    cron: str
    timezone: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int | None
    tags: list[str] | None
    catchup: str  # "all", "latest" or "none"
    max_catchup_s: float
    paused: bool
    created_at: float
    last_fire_at: float  # every fire time up to here was run or skipped
    next_fire_at: float | None
    fired: int
    skipped: int


class _ScheduleList(msgspec.Struct, frozen=True):
    schedules: list[Schedule]


class PauseSelector(msgspec.Struct, frozen=True, omit_defaults=True):
    """Which waiting tasks a pause holds: every field given must match; a task matches
    `function` if it is any of them, and `tags` if it carries all of them."""

    function: list[str] | None = None
    tags: list[str] | None = None
    priority_min: int | None = None
    priority_max: int | None = None


class Pause(msgspec.Struct, frozen=True):
    """A pause rule, as `POST /v1/pauses` and `GET /v1/pauses` show it. While it stands,
    the waiting tasks its selector matches are held (state `paused`)."""

    id: str
    selector: PauseSelector
    created_at: float
    held: int | None = None  # the waiting tasks it held when made; only `create` says


class _PauseList(msgspec.Struct, frozen=True):
    pauses: list[Pause]


class _Released(msgspec.Struct, frozen=True):
    released: int


class Tenant(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: float


class NewTenant(msgspec.Struct, frozen=True):
    """A tenant just created, with its first API key: the only time the key is shown."""

    id: str
    name: str
    api_key: str


class _TenantList(msgspec.Struct, frozen=True):
    tenants: list[Tenant]


class ApiKey(msgspec.Struct, frozen=True):
    """A key as it can be shown again: its id and prefix, never the key itself."""

    id: str
    prefix: str
    created_at: float
    revoked_at: float | None


class NewKey(msgspec.Struct, frozen=True):
    """A key just created: the only time `api_key` is shown."""

    id: str
    api_key: str


class _KeyList(msgspec.Struct, frozen=True):
    keys: list[ApiKey]


class _ErrorBody(msgspec.Struct):
    status: int
    code: str
    message: str
    field: str | None = None


class _Error(msgspec.Struct):
    error: _ErrorBody
