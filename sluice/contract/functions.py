"""Functions: their configs (HTTP targets among them) and their list's query."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from ..model import (
    DEFAULT_PRIORITY,
)
from .fields import (
    Count,
    FunctionName,
    Name,
    NotifyEvents,
    PageSize,
    Priority,
    Rate,
    Tags,
    TargetUrl,
    Timeout,
    Ttl,
)
from .tasks import RetryPolicy

MAX_TARGET_TIMEOUT_S: Final = 900.0
# Standard Webhooks secrets: "whsec_" and the base64 of 24 to 64 random bytes.
WebhookSecret = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^whsec_(?:[A-Za-z0-9+/]{4}){8,20}"
        r"(?:[A-Za-z0-9+/]{4}(?:[A-Za-z0-9+/]{2}==)?|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
    ),
]


MemoryMb = Annotated[int, msgspec.Meta(ge=1, le=16 * 1024 * 1024)]
CpuWeight = Annotated[float, msgspec.Meta(gt=0, le=1024)]


class HttpTarget(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A function served by an HTTP endpoint in any language: Sluice POSTs each task to
    `url` (docs/http-targets.md) instead of pushing it to a worker."""

    url: TargetUrl
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_TARGET_TIMEOUT_S)] = 30.0
    """Longest wait for the endpoint's answer; past it the attempt failed (retryable)."""
    secret: WebhookSecret | None = None
    """`whsec_…` key of the request signatures; made when the function is set without one."""


MAX_WEBHOOKS: Final = 5
MAX_DESTINATIONS: Final = 10


class Webhook(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A receiver of a function's task ends: Sluice POSTs each event to `url`, signed as
    Standard Webhooks v1, from a durable outbox (docs/notifications.md)."""

    url: TargetUrl
    events: NotifyEvents = msgspec.field(
        default_factory=lambda: ["succeeded", "dead", "cancelled", "expired"]
    )
    secrets: Annotated[list[WebhookSecret], msgspec.Meta(max_length=2)] = []
    """`whsec_…` keys; each delivery is signed with every one (two during a rotation).
    One is made when the function is set without any; reads never show them."""


class Destination(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a task's end starts: a task of `function` (with the result, or on failure
    the error, as its one argument) or an event posted to `topic` (its subscribers fan
    it out). Deduplicated: a delivery tried again never starts it twice."""

    function: FunctionName | None = None
    topic: Name | None = None
    events: NotifyEvents = msgspec.field(default_factory=lambda: ["succeeded"])


Webhooks = Annotated[list[Webhook], msgspec.Meta(max_length=MAX_WEBHOOKS)]
Destinations = Annotated[list[Destination], msgspec.Meta(max_length=MAX_DESTINATIONS)]


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
    memory_mb: MemoryMb | None = None
    """Memory one task needs (MiB): a worker that offers memory runs together only what
    fits, and an isolated task's process is held to it. None: counts 0."""
    cpu: CpuWeight | None = None
    """CPUs one task needs, fitted into what a worker offers like `memory_mb`."""
    target: HttpTarget | None = None
    """An HTTP endpoint that runs the function; None: workers run it."""
    webhooks: Webhooks = []
    """Receivers told of its tasks' ends (docs/notifications.md)."""
    destinations: Destinations = []
    """Functions started (or topics posted to) by its tasks' ends."""


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
    memory_mb: MemoryMb | None = None
    cpu: CpuWeight | None = None
    target: HttpTarget | None = None
    webhooks: Webhooks = []
    destinations: Destinations = []


class TargetState(msgspec.Struct, frozen=True):
    """Adaptive concurrency (AIMD, policy/aimd.py) of an HTTP target or of a worker pool,
    on the node that answered."""

    limit: float
    in_flight: int
    paused_until: float | None


Source = Literal["default", "code", "operator"]


class Function(FunctionConfig, frozen=True):
    """A function as `GET /v1/functions/{name}` shows it: its effective config and where
    each setting comes from; for an HTTP target its state, and for a function whose
    workers were throttled the limit their pool is under (engine/adaptive.py)."""

    target_state: TargetState | None = None
    pool_state: TargetState | None = None
    sources: dict[str, Source] = {}
    """Each setting's owner: `operator` (set through the API or CLI; wins, and no worker
    reconnecting changes it), `code` (the decorator's, registered by a worker), or
    `default` (no code registered the function: an HTTP target, say)."""


class FunctionPut(msgspec.Struct, frozen=True, kw_only=True):
    """`PUT /v1/functions/{name}`'s query: whose settings the body holds. `operator`
    (the default): the fields given become the operator's settings, replacing the
    operator's earlier ones; the fields left out follow the code. `code`: the body is the
    code's config (what `App.register` sends; a worker's hello does the same)."""

    source: Literal["operator", "code"] = "operator"


class FunctionList(msgspec.Struct, frozen=True):
    functions: list[FunctionConfig]
    next: str | None = None  # pass as `after` for the next page; null on the last one


class FunctionQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/functions`: by name, after `after` (a tenant has at most 1,000, so one
    page of the default size is all of them)."""

    after: FunctionName | None = None
    limit: PageSize = 1000
