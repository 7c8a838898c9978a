"""Plain data shared by every layer: task states, function config, store records.

No I/O here. Records are frozen msgspec Structs so they are cheap to build and copy.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Annotated, Any, Final, Literal

import msgspec

# Task states (DESIGN §3). Terminal states never run again.
SCHEDULED: Final = "scheduled"
READY: Final = "ready"
PAUSED: Final = "paused"  # held by a pause rule: ready or scheduled once it is lifted
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"  # transient: an attempt failed and a retry is scheduled
DEAD: Final = "dead"
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"

STATES: Final = (SCHEDULED, READY, PAUSED, RUNNING, SUCCEEDED, DEAD, CANCELLED, EXPIRED)
TERMINAL: Final = frozenset({SUCCEEDED, DEAD, CANCELLED, EXPIRED})

# The pseudo-tenant of shared worker pools: workers that an operator runs for every
# tenant's tasks of the functions they serve (DESIGN §6 "shared worker slots").
SHARED: Final = "*"

# Function names, wherever they come from (a worker's hello, PUT /v1/functions/{name}).
FUNCTION_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
# Names of schedules and subscriptions, and event topics.
NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")

MIN_PRIORITY: Final = 0
MAX_PRIORITY: Final = 9
DEFAULT_PRIORITY: Final = 5
DEFAULT_MAX_ATTEMPTS: Final = 25
MAX_ATTEMPTS: Final = 1000
DAY_S: Final = 86400.0
MAX_TIMEOUT_S: Final = 7 * DAY_S  # a running attempt's longest timeout
MAX_TTL_S: Final = 365 * DAY_S
MAX_BACKOFF_S: Final = 30 * DAY_S
MAX_LIMIT: Final = 1_000_000  # rates (a second), bursts and concurrency caps

# Constrained types: decoding enforces them and the OpenAPI document states them. A
# limit an operator may change (tags, delays) is marked "x-limit" and filled in from the
# node's settings when the document is built (api/openapi.py), and checked in code.
FunctionName = Annotated[str, msgspec.Meta(pattern=FUNCTION_NAME.pattern)]
Name = Annotated[str, msgspec.Meta(pattern=NAME.pattern)]
Priority = Annotated[int, msgspec.Meta(ge=MIN_PRIORITY, le=MAX_PRIORITY)]
Attempts = Annotated[int, msgspec.Meta(ge=1, le=MAX_ATTEMPTS)]
Tag = Annotated[str, msgspec.Meta(min_length=1, extra_json_schema={"x-limit": "max_tag_length"})]
Tags = Annotated[list[Tag], msgspec.Meta(extra_json_schema={"x-limit": "max_tags"})]
Timeout = Annotated[float, msgspec.Meta(gt=0, le=MAX_TIMEOUT_S)]
Ttl = Annotated[float, msgspec.Meta(gt=0, le=MAX_TTL_S)]
Backoff = Annotated[float, msgspec.Meta(ge=0, le=MAX_BACKOFF_S)]
Rate = Annotated[float, msgspec.Meta(gt=0, le=MAX_LIMIT)]
Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How failed attempts are retried (DESIGN §4): full-jitter exponential backoff."""

    max_attempts: Attempts = DEFAULT_MAX_ATTEMPTS
    base_s: Backoff = 1.0
    min_backoff_s: Backoff = 1.0
    cap_s: Backoff = 3600.0
    max_retry_duration_s: Ttl = DAY_S
    max_throttles: Annotated[int, msgspec.Meta(ge=0, le=MAX_LIMIT)] = 100
    """Flow-control retries (`Throttled`, HTTP 429) allowed on top of max_attempts."""


MAX_TARGET_TIMEOUT_S: Final = 900.0
# http(s), a host, no credentials; at most 2,048 characters. Whether the host is an
# address the server may call is the egress policy's to say (engine/egress.py), not a
# pattern's.
TargetUrl = Annotated[
    str, msgspec.Meta(pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]+([/?#]\S*)?$", max_length=2048)
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


class NewTask(msgspec.Struct, frozen=True):
    """A task as admission hands it to the store."""

    id: str
    function: str
    payload: bytes  # JSON: {"args": [...], "kwargs": {...}}
    state: str  # READY or SCHEDULED
    priority: int
    stag: float
    run_at: float
    max_attempts: int
    timeout_s: float | None = None
    key: str | None = None
    tags: str | None = None  # JSON array
    expires_at: float | None = None
    retry: bytes | None = None  # JSON RetryPolicy overriding the function's
    partition: int = 0  # shuffle-sharding partition, placed at submit (engine/partitions.py)


class SubmitResult(msgspec.Struct, frozen=True):
    id: str
    created: bool
    state: str
    run_at: float


class TaskRecord(msgspec.Struct, frozen=True):
    id: str
    tenant_id: str
    function: str
    payload: bytes
    state: str
    priority: int
    key: str | None
    tags: str | None
    attempt: int
    max_attempts: int
    timeout_s: float | None
    run_at: float
    expires_at: float | None
    created_at: float
    ready_at: float | None
    dispatched_at: float | None
    lease_owner: str | None
    lease_until: float | None
    finished_at: float | None
    result: bytes | None
    error: str | None
    throttles: int = 0
    series_at: float | None = None  # when a retry by hand started the current series
    retry: bytes | None = None
    partition: int = 0


class AttemptRecord(msgspec.Struct, frozen=True):
    task_id: str
    attempt: int
    worker: str | None
    dispatched_at: float | None
    started_at: float | None
    finished_at: float | None
    outcome: str
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None


class EventRecord(msgspec.Struct, frozen=True):
    task_id: str
    at: float
    kind: str
    detail: str | None = None


class ClaimedTask(msgspec.Struct, frozen=True):
    """A task leased to a worker: what the gateway delivers."""

    tenant_id: str
    id: str
    function: str
    payload: bytes
    attempt: int
    max_attempts: int
    timeout_s: float | None
    priority: int
    created_at: float
    dispatched_at: float
    lease_until: float
    throttles: int = 0
    retry: bytes | None = None  # the task's own RetryPolicy (JSON), if it has one
    tags: str | None = None  # JSON array, for the pause rules a retry must respect
    stag: float = 0.0  # fair start tag: the virtual clock moves to the largest dispatched


class Finish(msgspec.Struct, frozen=True):
    """The fenced end of one attempt, with the task's next state already decided."""

    tenant_id: str
    task_id: str
    attempt: int
    worker: str
    next_state: str  # SUCCEEDED, DEAD, READY or SCHEDULED (a retry)
    outcome: str  # what the attempt did: succeeded, failed, rejected, timed_out, ...
    dispatched_at: float | None
    started_at: float | None
    finished_at: float
    run_at: float | None = None  # for a retry
    result: bytes | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    throttled: bool = False  # flow control: counted in `throttles`, not against max_attempts


class Tenant(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: float


class ApiKey(msgspec.Struct, frozen=True):
    """A key as it can be shown again: never the key itself, which is stored hashed."""

    id: str  # the first 16 hex digits of its SHA-256
    prefix: str
    created_at: float
    revoked_at: float | None


# Task ids are UUIDv7-shaped: time-ordered, so inserts append to the primary-key b-tree.
# 48 bits of milliseconds, a 12-bit sequence that orders ids made in one millisecond,
# and 62 random bits.
_id_lock = threading.Lock()
_last_ms = 0
_seq = 0
_SEQ_MAX = 0xFFF


def new_task_ids(n: int) -> list[str]:
    """`n` new ids, in increasing order."""
    out: list[str] = []
    while n > 0:
        k = min(n, _SEQ_MAX + 1)
        out += _id_run(k)
        n -= k
    return out


def _id_run(n: int) -> list[str]:
    global _last_ms, _seq
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _seq = ms, 0
        if _seq + n > _SEQ_MAX + 1:  # this millisecond's sequence is used up: take the next
            _last_ms, _seq = _last_ms + 1, 0
        ms, first = _last_ms, _seq
        _seq += n
    # Every id of a run shares its millisecond: format it once; each id then adds its
    # sequence number and 62 random bits (the first hex digit carries the variant).
    stamp = f"{ms:012x}"
    head = f"{stamp[:8]}-{stamp[8:]}-7"
    rand = os.urandom(8 * n).hex()
    return [
        f"{head}{first + i:03x}-{_VARIANT[int(rand[16 * i], 16) & 3]}"
        f"{rand[16 * i + 1 : 16 * i + 4]}-{rand[16 * i + 4 : 16 * i + 16]}"
        for i in range(n)
    ]


_VARIANT = "89ab"


def time_ordered_id_floor(at: float) -> str:
    """The smallest id made at `at` (epoch seconds): every older id sorts before it."""
    h = f"{int(at * 1000):012x}"
    return f"{h[:8]}-{h[8:12]}-0000-0000-000000000000"


def new_task_id() -> str:
    return new_task_ids(1)[0]


class ScheduleRow(msgspec.Struct, frozen=True):
    """A cron schedule as stored: its config (JSON ScheduleSpec) and its firing state."""

    tenant_id: str
    name: str
    config: bytes
    paused: bool
    created_at: float
    last_fire_at: float  # every fire time up to here was run or skipped
    next_fire_at: float | None
    fired: int = 0
    skipped: int = 0


MAX_CATCHUP_S: Final = 7 * DAY_S
# Five fields, or six with seconds first, of croniter's characters; whether the fields
# make sense (and ever fire) is checked by croniter (a 422 when not).
Cron = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9A-Za-z*/,?#-]+( +[0-9A-Za-z*/,?#-]+){4,5}$", max_length=256)
]
# An IANA zone name; whether the zone exists is for the zone database to say (a 422).
TimeZone = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$",
                                       max_length=64)]  # fmt: skip
# Task arguments travel as raw JSON (never decoded by the server), documented by shape.
JsonArray = Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema={"type": "array", "items": {},
                                                                   "default": []})]  # fmt: skip
JsonObject = Annotated[
    msgspec.Raw, msgspec.Meta(extra_json_schema={"type": "object", "default": {}})
]


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


class PauseRow(msgspec.Struct, frozen=True):
    """A pause rule as stored: its id, its selector (JSON) and when it began."""

    tenant_id: str
    id: str
    selector: bytes
    created_at: float


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


class SubscriptionRow(msgspec.Struct, frozen=True):
    name: str
    topic: str
    config: bytes
    created_at: float


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
