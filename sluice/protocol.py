"""The worker protocol: JSON frames over one websocket (docs/protocol.md).

Plain data only, shared by the server's gateway and the worker runtime. Every frame
is a JSON object whose "t" field names its type. Task arguments and results travel
as raw JSON (`msgspec.Raw`): the server never decodes them.
"""

from __future__ import annotations

from typing import Final

import msgspec

PROTOCOL_VERSION: Final = 2  # 2: TaskFrame.start_at
WORKER_PATH: Final = "/v1/workers/connect"


class FunctionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    config: msgspec.Raw = msgspec.Raw(b"{}")  # a FunctionConfig without its name


class RunningTask(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    attempt: int
    function: str | None = None  # in a hello: what it runs, for its memory and cpu


# worker -> server


class Hello(msgspec.Struct, frozen=True, tag="hello", tag_field="t"):
    worker_id: str
    slots: int
    functions: list[FunctionSpec]
    running: list[RunningTask] = []
    protocol: int = PROTOCOL_VERSION
    memory_mb: float | None = None
    """Memory the worker offers its tasks: it is sent a task only while the `memory_mb`
    its functions declare, summed over its running tasks and that one, fits. None: no
    limit (every task counts 0)."""
    cpu: float | None = None
    """CPUs the worker offers: the functions' `cpu` weights are fitted the same way."""
    version: str = ""
    """The worker's Sluice version (the console's workers page shows it)."""


class LogLine(msgspec.Struct, frozen=True, array_like=True):
    """One captured line of an attempt: a `logging` record or a line of stdout/stderr.

    `seq` numbers an attempt's lines from 0 without gaps as the handler writes them; a gap
    in what the server holds is where lines were dropped (docs/observability.md).
    """

    seq: int
    at: float
    level: int  # logging's numbers: 10 DEBUG .. 50 CRITICAL; stdout 20, stderr 40
    stream: str  # log | stdout | stderr
    logger: str
    message: str
    extra: msgspec.Raw = msgspec.Raw(b"null")  # a JSON object: the record's structured extras


class ProgressItem(msgspec.Struct, frozen=True):
    """A running attempt's news: when it started, and log lines written since the last."""

    id: str
    attempt: int
    started_at: float | None = None
    logs: list[LogLine] = []
    drop: tuple[int, int] | None = None
    """Lines [from, to) of this attempt shipped before and since pushed out of its tail
    window: the server deletes them (the worker keeps an attempt's head and tail)."""
    progress: msgspec.Raw = msgspec.Raw(b"null")
    """The handler's latest `ctx.progress(...)`, if it reported one since the last frame:
    a JSON object {done, total, message} (a `ProgressReport`). Raw, so that a bad value
    is dropped by the server with a warning instead of failing the whole frame; absent
    (null) from workers that predate it, and ignored by servers that predate it."""


MAX_PROGRESS_MESSAGE = 200


class ProgressReport(msgspec.Struct, frozen=True, omit_defaults=True):
    """What `ctx.progress(done, total, message)` reported: `done` of `total` (finite,
    >= 0; total None when unknown), a message of at most 200 characters."""

    done: float
    total: float | None = None
    message: str | None = None


class ResultItem(msgspec.Struct, frozen=True):
    id: str
    attempt: int
    outcome: str  # ok | error | reject | retry | throttled | timeout | cancelled
    started_at: float
    finished_at: float
    result: msgspec.Raw = msgspec.Raw(b"null")  # the handler's return value, as JSON
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    retry_after_s: float | None = None
    logs: list[LogLine] = []  # the lines not sent in progress frames
    drop: tuple[int, int] | None = None  # as in ProgressItem


class Results(msgspec.Struct, frozen=True, tag="results", tag_field="t"):
    items: list[ResultItem]


class Progress(msgspec.Struct, frozen=True, tag="progress", tag_field="t"):
    """Running attempts' starts and log lines, in batches while they run."""

    items: list[ProgressItem]


class Heartbeat(msgspec.Struct, frozen=True, tag="hb", tag_field="t"):
    running: int = 0


class Credit(msgspec.Struct, frozen=True, tag="credit", tag_field="t"):
    slots: int
    draining: bool = False  # the worker is stopping: it takes nothing new
    ahead: int = 0
    """Tasks it takes beyond its slots, each started when a slot frees (prefetch: it
    hides the round trip from short tasks; older servers ignore it)."""


class Release(msgspec.Struct, frozen=True, tag="release", tag_field="t"):
    """Tasks the worker gives back unfinished (a drain ran out of grace): no attempt used."""

    items: list[RunningTask]


WorkerFrame = Hello | Results | Progress | Heartbeat | Credit | Release


# server -> worker


class Welcome(msgspec.Struct, frozen=True, tag="welcome", tag_field="t"):
    worker_id: str
    heartbeat_s: float
    lease_s: float
    protocol: int = PROTOCOL_VERSION
    max_frame_bytes: int = 16 * 1024 * 1024
    """Largest frame the server takes: a worker splits its results to stay under it."""
    max_result_bytes: int = 1024 * 1024
    """Largest result the server keeps: a larger one fails its attempt, not retried."""
    max_log_bytes: int = 256 * 1024
    """Log bytes the server keeps of one attempt: the worker keeps a head and a tail."""
    shared: bool = False
    """The worker connected with the pool key: it runs every tenant's tasks (and so
    isolates each attempt in a process by default)."""


class TaskFrame(msgspec.Struct, frozen=True):
    id: str
    function: str
    attempt: int
    payload: msgspec.Raw
    timeout_s: float | None = None
    lease_until: float = 0.0
    trace: str | None = None
    """The task's W3C creation context: its traceparent, then a space and its tracestate
    if it has one (sluice/tracing.py); absent when the task was submitted without one."""
    tenant: str | None = None
    """The task's tenant, sent to shared-pool workers only (a child process never runs
    two tenants' tasks)."""
    start_at: float | None = None
    """A delayed task leased to the worker just before it is due (engine/delays.py):
    start it at this time (epoch seconds), not before. Sent only to workers of protocol 2
    and later."""


class Deliver(msgspec.Struct, frozen=True, tag="tasks", tag_field="t"):
    tasks: list[TaskFrame]


class AckItem(msgspec.Struct, frozen=True, array_like=True):
    id: str
    attempt: int
    accepted: bool


class Ack(msgspec.Struct, frozen=True, tag="ack", tag_field="t"):
    items: list[AckItem]


class Cancel(msgspec.Struct, frozen=True, tag="cancel", tag_field="t"):
    """Stop these tasks: they were cancelled. Answer each with a `cancelled` result."""

    ids: list[str]


class ErrorFrame(msgspec.Struct, frozen=True, tag="error", tag_field="t"):
    code: str
    message: str


ServerFrame = Welcome | Deliver | Ack | Cancel | ErrorFrame


class Payload(msgspec.Struct, frozen=True):
    """How the Python SDK encodes a call: positional and keyword arguments."""

    args: list[object] = []
    kwargs: dict[str, object] = {}
