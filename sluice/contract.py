"""The `/v1` contract: every request and response body of the HTTP API, one struct each,
shared by the server (`api/`) and the client (`client/`).

The bottom layer: it imports msgspec, the standard library, `model`'s constants and
`errors`, so the client reads every answer without any server code.

Constraints live on the types: decoding enforces them and the OpenAPI document states
them (api/openapi.py). A limit an operator may change (tags, delays, batch size) is
marked "x-limit", filled in from the node's settings when the document is built, and
checked in code. Fields typed `Any` carry raw JSON (task arguments, results): the server
fills them with `msgspec.Raw` and never decodes them; the client reads Python values.

Structs that are also requests (RetryPolicy, HttpTarget, FunctionConfig, Selector,
TenantQuota) refuse unknown fields, in answers too: add a field to one of them only
together with a client that knows it.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from .errors import InvalidRequest, Unprocessable
from .model import (
    DAY_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PRIORITY,
    FUNCTION_NAME,
    MAX_ATTEMPTS,
    MAX_BACKOFF_S,
    MAX_LIMIT,
    MAX_PRIORITY,
    MAX_TIMEOUT_S,
    MAX_TTL_S,
    MIN_PRIORITY,
    NAME,
    new_task_id,
)

# Constrained types: decoding enforces them and the OpenAPI document states them.
FunctionName = Annotated[str, msgspec.Meta(pattern=FUNCTION_NAME.pattern)]
Name = Annotated[str, msgspec.Meta(pattern=NAME.pattern)]
Priority = Annotated[int, msgspec.Meta(ge=MIN_PRIORITY, le=MAX_PRIORITY)]
Attempts = Annotated[int, msgspec.Meta(ge=1, le=MAX_ATTEMPTS)]
# Text a user names things with: no NUL (PostgreSQL's text cannot hold one), no other
# control character.
TEXT: Final = r"^[^\x00-\x1f\x7f]*$"
Tag = Annotated[
    str,
    msgspec.Meta(min_length=1, pattern=TEXT, extra_json_schema={"x-limit": "max_tag_length"}),
]
Tags = Annotated[list[Tag], msgspec.Meta(extra_json_schema={"x-limit": "max_tags"})]
Timeout = Annotated[float, msgspec.Meta(gt=0, le=MAX_TIMEOUT_S)]
Ttl = Annotated[float, msgspec.Meta(gt=0, le=MAX_TTL_S)]
Backoff = Annotated[float, msgspec.Meta(ge=0, le=MAX_BACKOFF_S)]
Rate = Annotated[float, msgspec.Meta(gt=0, le=MAX_LIMIT)]
Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]
KEY_MAX_LENGTH: Final = 256
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=KEY_MAX_LENGTH, pattern=TEXT)]
Delay = Annotated[float, msgspec.Meta(ge=0, extra_json_schema={"x-limit": "max_delay_s"})]
# Task arguments travel as raw JSON (never decoded by the server), documented by shape.
JsonArray = Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema={"type": "array", "items": {},
                                                                   "default": []})]  # fmt: skip
JsonObject = Annotated[
    msgspec.Raw, msgspec.Meta(extra_json_schema={"type": "object", "default": {}})
]


# Selectors -------------------------------------------------------------------------

MAX_VALUES: Final = 100  # values in one list field of a selector
TAG_MAX_LENGTH: Final = 256  # what a selector may look for; tasks' own tags are shorter

State = Literal["scheduled", "ready", "paused", "running", "succeeded", "dead", "cancelled",
                "expired"]  # fmt: skip
Functions = Annotated[list[FunctionName], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]
States = Annotated[list[State], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]
SelectorTag = Annotated[str, msgspec.Meta(min_length=1, max_length=TAG_MAX_LENGTH, pattern=TEXT)]
SelectorTags = Annotated[list[SelectorTag], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]


class Selector(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Which tasks a list, a cancel, a delete, a retry or a pause applies to.

    Every field given must match (AND); a list field matches any of its values (OR);
    `tags` matches tasks carrying all of them."""

    function: Functions | None = None
    state: States | None = None
    tags: SelectorTags | None = None
    priority_min: Priority | None = None
    priority_max: Priority | None = None
    created_after: float | None = None
    created_before: float | None = None
    key: Key | None = None

    def validate(self) -> Selector:
        """The one rule a schema cannot state: priority_min <= priority_max (a 422)."""
        if (
            self.priority_min is not None
            and self.priority_max is not None
            and self.priority_min > self.priority_max
        ):
            raise Unprocessable(
                "priority_min is above priority_max: the range is empty",
                code="empty_range", field="priority_min",
            )  # fmt: skip
        return self


class SelectorBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a bulk verb: `{"selector": {...}}` (an empty selector matches all)."""

    selector: Selector


# Tasks -----------------------------------------------------------------------------


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How failed attempts are retried (DESIGN §4): full-jitter exponential backoff."""

    max_attempts: Attempts = DEFAULT_MAX_ATTEMPTS
    base_s: Backoff = 1.0
    min_backoff_s: Backoff = 1.0
    cap_s: Backoff = 3600.0
    max_retry_duration_s: Ttl = DAY_S
    max_throttles: Annotated[int, msgspec.Meta(ge=0, le=MAX_LIMIT)] = 100
    """Flow-control retries (`Throttled`, HTTP 429) allowed on top of max_attempts."""


class TaskSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One task as a producer describes it (the body of `POST /v1/tasks`). At most one of
    `delay` and `run_at`, and of `ttl` and `expires_at` (api/openapi.py states it)."""

    function: FunctionName
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


class DeadPage(msgspec.Struct, frozen=True):
    tasks: list[DeadTask]
    next: str | None  # pass as `after` for the next page; null on the last one


class RetryCount(msgspec.Struct, frozen=True):
    retried: int


# Functions -------------------------------------------------------------------------

MAX_TARGET_TIMEOUT_S: Final = 900.0
# http(s), a host, no credentials; at most 2,048 characters. Whether the host is an
# address the server may call is the egress policy's to say (engine/egress.py), not a
# pattern's.
# (ASCII classes only: `\s` means more to Python's re than to JSON Schema's, U+0085.)
TargetUrl = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@ \t\r\n]+([/?#][^ \t\r\n]*)?$",
        max_length=2048,
    ),
]
# Standard Webhooks secrets: "whsec_" and the base64 of 24 to 64 random bytes.
WebhookSecret = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^whsec_(?:[A-Za-z0-9+/]{4}){8,20}"
        r"(?:[A-Za-z0-9+/]{4}(?:[A-Za-z0-9+/]{2}==)?|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
    ),
]


class HttpTarget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A function served by an HTTP endpoint in any language: Sluice POSTs each task to
    `url` (docs/http-targets.md) instead of pushing it to a worker."""

    url: TargetUrl
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_TARGET_TIMEOUT_S)] = 30.0
    """Longest wait for the endpoint's answer; past it the attempt failed (retryable)."""
    secret: WebhookSecret | None = None
    """`whsec_…` key of the request signatures; made when the function is set without one."""


class FunctionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A function's defaults; a task may override priority, ttl and retry."""

    name: FunctionName
    retry: RetryPolicy = RetryPolicy()
    timeout_s: Timeout | None = None
    priority: Priority = DEFAULT_PRIORITY
    ttl_s: Ttl | None = None
    tags: Tags = []
    rate: Rate | None = None
    """Most starts per second, cluster-wide (GCRA); retries count too. None: no limit."""
    burst: Count = 1
    """Starts allowed at once on top of `rate` (the limit's bucket)."""
    max_concurrency: Count | None = None
    """Most tasks of this function running at once, cluster-wide. None: no limit."""
    target: HttpTarget | None = None
    """An HTTP endpoint that runs the function; None: workers run it."""


class FunctionSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A function's config, as `PUT /v1/functions/{name}` takes it (the name is the path's)."""

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


class Function(FunctionConfig, frozen=True):
    """A function as `GET /v1/functions/{name}` shows it: its config; for an HTTP target
    its state, and for a function whose workers were throttled the limit their pool is
    under (engine/adaptive.py)."""

    target_state: TargetState | None = None
    pool_state: TargetState | None = None


class FunctionList(msgspec.Struct, frozen=True):
    functions: list[FunctionConfig]
    next: str | None = None  # pass as `after` for the next page; null on the last one


# Schedules -------------------------------------------------------------------------

MAX_CATCHUP_S: Final = 7 * DAY_S
# Five fields, or six with seconds first, of croniter's characters; whether the fields
# make sense (and ever fire) is checked by croniter (a 422 when not).
Cron = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9A-Za-z*/,?#-]+( +[0-9A-Za-z*/,?#-]+){4,5}$", max_length=256)
]
# An IANA zone name; whether the zone exists is for the zone database to say (a 422).
TimeZone = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$",
                                       max_length=64)]  # fmt: skip


class ScheduleSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A cron schedule as a user writes it (the body of `PUT /v1/schedules/{name}`)."""

    function: FunctionName
    cron: Cron
    timezone: TimeZone = "UTC"
    args: JsonArray = msgspec.field(default_factory=lambda: msgspec.Raw(b"[]"))
    kwargs: JsonObject = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))
    priority: Priority | None = None
    tags: Tags | None = None
    catchup: Literal["all", "latest", "none"] = "all"  # policy/cron.py
    max_catchup_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_CATCHUP_S)] = 600.0


class Schedule(msgspec.Struct, frozen=True):
    """A cron schedule: its spec and its firing state. Each fire submits a task keyed
    `sluice:cron:{name}:{fire_epoch_seconds}`."""

    name: str
    function: str
    cron: str
    timezone: str
    args: Any
    kwargs: Any
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


class ScheduleList(msgspec.Struct, frozen=True):
    schedules: list[Schedule]


# Pauses ----------------------------------------------------------------------------


class PauseSelector(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a pause holds: waiting tasks by function, tags and priority (at least one).
    Fields are left out rather than null, so "at least one" is a schema rule."""

    function: Functions | msgspec.UnsetType = msgspec.UNSET
    tags: SelectorTags | msgspec.UnsetType = msgspec.UNSET
    priority_min: Priority | msgspec.UnsetType = msgspec.UNSET
    priority_max: Priority | msgspec.UnsetType = msgspec.UNSET

    def selector(self) -> Selector:
        """As a Selector (how pauses are stored and matched)."""
        given = {
            f: value
            for f in self.__struct_fields__
            if (value := getattr(self, f)) is not msgspec.UNSET
        }
        if not given:
            raise InvalidRequest(
                "a pause needs a selector: function, tags or priority", field="selector"
            )
        return Selector(**given).validate()


class PauseBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of `POST /v1/pauses`."""

    selector: PauseSelector


class Pause(msgspec.Struct, frozen=True):
    """A pause rule: the waiting tasks its selector matches are held (state `paused`)
    until it is lifted."""

    id: str
    selector: Selector
    created_at: float
    held: int | None = None  # how many waiting tasks it held when made (creation only)


class PauseList(msgspec.Struct, frozen=True):
    pauses: list[Pause]


class ReleasedCount(msgspec.Struct, frozen=True):
    released: int


# Events ----------------------------------------------------------------------------

MAX_FILTER_FIELDS: Final = 16


class SubscriptionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A function's subscription to a topic (the body of `PUT /v1/subscriptions/{name}`).

    `filter` keeps the events whose top-level fields equal the given values (a list
    value: any of them)."""

    topic: Name
    function: FunctionName
    filter: Annotated[dict[str, Any], msgspec.Meta(max_length=MAX_FILTER_FIELDS)] = {}
    priority: Priority | None = None
    tags: Tags | None = None


class Subscription(msgspec.Struct, frozen=True):
    name: str
    topic: str
    function: str
    filter: dict[str, Any]
    priority: int | None
    tags: list[str] | None
    created_at: float


class SubscriptionList(msgspec.Struct, frozen=True):
    subscriptions: list[Subscription]


class EventBody(msgspec.Struct):
    """An event as documented: any JSON object; `id`, when given, deduplicates it."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=TEXT)] | None = None


class EventTask(msgspec.Struct, frozen=True):
    subscription: str
    id: str
    created: bool  # False: this event was posted before; the task is the first one's
    state: str


class EventOutcome(msgspec.Struct, frozen=True):
    """What posting an event did: one task per matching subscription."""

    id: str  # the event's id (given, or made up when the event had none)
    tasks: list[EventTask]


# Tenants and keys ------------------------------------------------------------------

TENANT_NAME: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class TenantCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=TENANT_NAME)]


class Tenant(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: float


class NewTenant(msgspec.Struct, frozen=True):
    """A tenant just created, with its first API key: the only time the key is shown."""

    id: str
    name: str
    api_key: str


class TenantList(msgspec.Struct, frozen=True):
    tenants: list[Tenant]


class ApiKey(msgspec.Struct, frozen=True):
    """A key as it can be shown again: never the key itself, which is stored hashed."""

    id: str  # the first 16 hex digits of its SHA-256
    prefix: str
    created_at: float
    revoked_at: float | None


class NewKey(msgspec.Struct, frozen=True):
    """A key just created: the only time `api_key` is shown; only its hash is stored."""

    id: str
    api_key: str


class KeyList(msgspec.Struct, frozen=True):
    keys: list[ApiKey]


QuotaCount = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]


class TenantQuota(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A tenant's quotas (admin: `PUT /v1/tenants/{id}/quota`); None: no limit."""

    max_queued: QuotaCount | None = None
    """Most waiting tasks (ready, scheduled, paused); past it a submit gets 429."""
    max_payload_bytes: QuotaCount | None = None
    """Largest payload, below the server's own limit."""
    weight: Annotated[float, msgspec.Meta(ge=0.001, le=1000)] = 1.0
    """The tenant's share of shared capacity against others' (fair queueing): at 3 it
    gets three tasks started to a weight-1 tenant's one, when both have work waiting."""
    rate: Rate | None = None
    """Most starts a second of all the tenant's tasks, cluster-wide (GCRA)."""
    burst: Count = 1
    """Starts allowed at once on top of `rate`."""
    max_concurrency: Count | None = None
    """Most of the tenant's tasks running at once, cluster-wide: its maximum share of
    worker slots."""
    min_slots: QuotaCount | None = None
    """Shared pool slots reserved for the tenant: while it has work waiting and fewer
    running, its tasks are claimed before anyone's fair turn (its minimum share)."""

    @property
    def limited(self) -> bool:
        return self.rate is not None or self.max_concurrency is not None


# Operations ------------------------------------------------------------------------


class Health(msgspec.Struct, frozen=True):
    status: str
    workers: int


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One administrative or bulk action in the audit log: who did what, to which
    tenant, on which selector, to how many, when."""

    id: str = msgspec.field(default_factory=new_task_id)
    """Time-ordered, like a task id: the listing's order and its page cursor."""
    tenant_id: str | None
    """The tenant acted on; None for a cluster-wide action (creating a tenant), which
    only the admin's listing shows."""
    actor: str
    """Who: "admin", or "key:<key id>" for the tenant key used."""
    action: str
    """What, as noun.verb: "tasks.cancel", "dead.retry", "pause.create", "key.revoke"..."""
    at: float
    """When (epoch seconds)."""
    selector: str | None = None
    """The selector or the ids acted on (JSON), if any."""
    count: int | None = None
    """How many tasks (or items) the action touched, if it counts any."""
    detail: str | None = None


class AuditPage(msgspec.Struct, frozen=True):
    entries: list[AuditEntry]
    next: str | None  # pass as `before` for the next page; null on the last one


# Errors ----------------------------------------------------------------------------


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    status: int
    code: str
    message: str
    field: str | None = None
    scope: str | None = None  # backpressure: "tenant" or "global", who is being slowed


class ErrorResponse(msgspec.Struct, frozen=True):
    """Every error answer: `{"error": {"status", "code", "message", "field"}}`."""

    error: ErrorBody


# Query parameters --------------------------------------------------------------------
# Each list route's query string, as a struct: converted from the query string with the
# same rules as a body (api/routes.py), documented from the same type (api/openapi.py).

MAX_EPOCH: Final = 1e11  # epoch seconds (year 5138): a bound that also refuses inf and nan
Epoch = Annotated[float, msgspec.Meta(ge=0, le=MAX_EPOCH)]
PageSize = Annotated[int, msgspec.Meta(ge=1, le=1000)]
TenantId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
Cursor = Annotated[str, msgspec.Meta(max_length=256, pattern=TEXT)]  # the `next` of a page
Action = Annotated[str, msgspec.Meta(pattern=r"^[a-z]+\.[a-z]+$")]


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


class DeadQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/dead`: of a function, ended within [since, until), after a cursor."""

    function: FunctionName | None = None
    since: Epoch | None = None
    until: Epoch | None = None
    after: Cursor | None = None
    limit: PageSize = 100


class FunctionQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/functions`: by name, after `after` (a tenant has at most 1,000, so one
    page of the default size is all of them)."""

    after: FunctionName | None = None
    limit: PageSize = 1000


class WaitQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/tasks/{id}/result`: how long to wait for the end, in seconds."""

    timeout: Annotated[float, msgspec.Meta(ge=0, extra_json_schema={"x-limit": "max_wait_s"})] = (
        30.0
    )


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/audit`: one tenant's (the admin key only), one kind of action, before a
    cursor."""

    tenant_id: TenantId | None = None
    action: Action | None = None
    before: Cursor | None = None
    limit: PageSize = 100
