"""Plain data shared by every layer: task states, names and limits, store records.

No I/O here. Records are frozen msgspec Structs so they are cheap to build and copy. The
bodies of the HTTP API, function configs among them, are in contract/.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Final

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
# The slowest rate a limit may have (one start in about 32 years): below it, 1 / rate
# overflows to infinity and the rate arithmetic (policy/gcra.py) to NaN.
MIN_RATE: Final = 1e-9


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
    trace_parent: str | None = None  # W3C creation context (sluice/tracing.py), kept as is
    trace_state: str | None = None
    webhooks: str | None = None  # JSON [{url, events}]: the task's own webhooks (rarely any)


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
    started_at: float | None = None  # the running attempt's start, once its worker said
    webhooks: str | None = None  # its own webhooks, JSON [{url, events}] (None: none)
    progress: str | None = None  # the latest reported, JSON {done, total, message, at, attempt}


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
    ready_at: float | None = None  # when the attempt became ready
    recorded_at: float | None = None  # when its end was written
    held_s: float | None = None  # of its wait, the time a limit held its function


class HistoryEntry(msgspec.Struct, frozen=True):
    """A row of a task's history: one of its rarer transitions (cancelled, retried by
    hand, expired, lease lost, handed back, a stale result), with its time."""

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
    trace_parent: str | None = None  # the creation context, for spans and the worker
    trace_state: str | None = None
    ready_at: float | None = None  # when it became ready: the start of a `wait` span
    webhooks: str | None = None  # the task's own webhooks, JSON (None for nearly all)
    held_s: float = 0.0  # of its wait, the time a limit held its function (engine/holds.py)
    start_at: float | None = None  # leased before it is due: the worker starts it then


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
    ready_at: float | None = None  # when the attempt became ready (ClaimedTask.ready_at)
    held_s: float = 0.0  # of its wait, held by a limit (ClaimedTask.held_s)
    logs: list[LogRecord] = []  # the attempt's last captured lines, written with it
    log_drop: tuple[int, int] | None = None  # lines [from, to) of it to delete (see LogBatch)
    notify: tuple[Notice, ...] = ()  # the outbox rows written with it (webhooks, destinations)


# What a task's end is told to (DESIGN §4 "Result notification"): a webhook's URL, or a
# destination ("function:NAME", "topic:NAME"), each on the events it asked for.
NOTIFY_EVENTS: Final = ("succeeded", "failed", "dead", "cancelled", "expired")
FUNCTION_DESTINATION: Final = "function:"
TOPIC_DESTINATION: Final = "topic:"
AFTER_KEY: Final = "sluice:after:"  # a destination's task key: this, the task it follows, ...


class Hook(msgspec.Struct, frozen=True, array_like=True):
    """One receiver of a function's ends: where, and on which events."""

    url: str
    events: tuple[str, ...]


class Notice(msgspec.Struct, frozen=True, array_like=True):
    """One notification to write into the outbox with a task's end."""

    event: str
    url: str
    function: str


class Notification(msgspec.Struct, frozen=True):
    """An outbox row: one event of one task for one receiver, and its delivery so far."""

    id: str  # the webhook-id: the same on every try, across restarts
    tenant_id: str
    task_id: str
    function: str
    event: str
    attempt: int
    url: str
    created_at: float
    state: str  # pending, delivered, failed, dropped
    tries: int
    next_at: float | None
    answered_at: float | None = None
    status: int | None = None  # the receiver's last HTTP status (None: no answer)
    answer: str | None = None  # the last answer's start, or why there was none
    seq: int = 0  # the order of writing: a task's notifications go out in it
    log: str | None = None  # JSON array of the last tries (engine/notifier.py TRIES_KEPT)


class WebhookEndpoint(msgspec.Struct, frozen=True):
    """A receiver of a tenant's webhooks that was disabled (or re-enabled)."""

    tenant_id: str
    url: str
    disabled_at: float | None
    reason: str | None


TASK_LOG_BYTES: Final = 1024 * 1024
"""Log bytes a task keeps across its attempts: the oldest attempts' lines go first."""
MARKER = "marker"  # the stream of a line the store wrote in place of dropped ones


MAX_ATTEMPT: Final = 2**31 - 1  # an attempt number the stores can hold (PostgreSQL's integer)


def storable(text: str) -> str:
    """Text a worker sent (an error, a log line), as both stores hold it: PostgreSQL's
    text refuses NUL, and one refused value failed the whole write it was in."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def dropped_attempt(size: int) -> str:
    """The marker line left for an attempt whose lines the task's budget dropped."""
    return (
        f"… this attempt's {size:,} bytes of lines were dropped: a task keeps "
        f"{TASK_LOG_BYTES // 1024:,} KiB of lines, the latest attempts' first …"
    )


class LogRecord(msgspec.Struct, frozen=True, array_like=True):
    """One captured line of an attempt (DESIGN §8 "Logs")."""

    attempt: int
    seq: int
    at: float
    level: int
    stream: str  # log | stdout | stderr
    logger: str
    message: str
    extra: str | None = None  # a JSON object


class LogBatch(msgspec.Struct, frozen=True):
    """Lines a running attempt shipped. Kept only while the attempt is the task's current
    one on that worker, or was finished by it (a dead worker's lines stay); `drop` names
    lines [from, to) shipped before that fell out of the attempt's tail window."""

    tenant_id: str
    task_id: str
    attempt: int
    worker: str
    lines: list[LogRecord]
    drop: tuple[int, int] | None = None


# Task ids are UUIDv7-shaped: time-ordered, so inserts append to the primary-key b-tree.
# 48 bits of milliseconds, a 12-bit sequence that orders ids made in one millisecond,
# and 62 random bits.
_SEQ_MAX = 0xFFF
FAKE_CLOCK_MS = 1000  # a clock this far from the system's (either way) is a test's
_VARIANT_DIGITS = bytes(ord("89ab"[b & 3]) for b in range(256))  # RFC 9562's variant 10xx
_SEQ_HEX = [f"{s:03x}-" for s in range(_SEQ_MAX + 1)]


class _Sequence:
    """The last millisecond given and the sequence within it. On the system clock, ids
    made one after the other never go back, even when the clock does; a fake clock's
    ids follow its time, back too (each test sets its own)."""

    def __init__(self, forward_only: bool) -> None:
        self.lock = threading.Lock()
        self.forward_only = forward_only
        self.last_ms = 0
        self.seq = 0

    def take(self, ms: int, n: int) -> tuple[int, int]:
        with self.lock:
            if ms > self.last_ms or (ms < self.last_ms and not self.forward_only):
                self.last_ms, self.seq = ms, 0
            if self.seq + n > _SEQ_MAX + 1:  # this millisecond's sequence is used up
                self.last_ms, self.seq = self.last_ms + 1, 0
            first = self.seq
            self.seq += n
            return self.last_ms, first


# The system clock's ids, and a fake clock's (far behind or ahead), each in their own
# order. A fake clock set days ahead must not move the system clock's ids on: they would
# carry that future time in the process for good (a retention purge, which finds ended
# tasks by their ids' time, would then skip them).
_system, _fake = _Sequence(forward_only=True), _Sequence(forward_only=False)


def new_task_ids(n: int, at: float | None = None) -> list[str]:
    """`n` new ids, in increasing order, made at `at` (the caller's clock; the system's
    when None), so an id's time is the time the engine's clock gave the task."""
    wall = time.time_ns() // 1_000_000
    ms = wall if at is None else int(at * 1000)
    sequence = _fake if abs(ms - wall) > FAKE_CLOCK_MS else _system
    out: list[str] = []
    while n > 0:
        k = min(n, _SEQ_MAX + 1)
        out += _id_run(*sequence.take(ms, k), k)
        n -= k
    return out


def _id_run(ms: int, first: int, n: int) -> list[str]:
    # Every id of a run shares its millisecond: format it once; each id then adds its
    # sequence number and 62 random bits: 2 in the variant digit (one random byte each,
    # mapped to 8, 9, a or b), 60 in 15 hex digits. Table lookups and slices only: half
    # the time of formatting each id's parts (0.31 against 0.64 us an id).
    if n >= _COLUMNS_FROM:
        return _id_columns(ms, first, n)
    stamp = f"{ms:012x}"
    head = f"{stamp[:8]}-{stamp[8:]}-7"
    rand = os.urandom(8 * n).hex()
    variant = os.urandom(n).translate(_VARIANT_DIGITS).decode()
    seq = _SEQ_HEX
    return [
        f"{head}{seq[first + i]}{variant[i]}{rand[16 * i : 16 * i + 3]}-"
        f"{rand[16 * i + 3 : 16 * i + 15]}"
        for i in range(n)
    ]


_COLUMNS_FROM = 64  # below this many ids, formatting each is the quicker
_SEQ_BYTES = "".join(_SEQ_HEX).encode()  # 4 bytes an id: 3 hex digits and "-"
_WIDTH = 37  # an id and a newline


def _id_columns(ms: int, first: int, n: int) -> list[str]:
    """The same ids, written a character position at a time: n copies of the shared
    part, then each varying position filled for every id at once by a strided slice
    (C loops), then one split. 0.12 against 0.45 us an id in a batch of 1,000."""
    stamp = f"{ms:012x}"
    buf = bytearray(f"{stamp[:8]}-{stamp[8:]}-7000-0000-000000000000\n".encode() * n)
    seq = _SEQ_BYTES[4 * first : 4 * (first + n)]
    for k in range(3):  # the sequence: positions 15-17
        buf[15 + k :: _WIDTH] = seq[k::4]
    buf[19::_WIDTH] = os.urandom(n).translate(_VARIANT_DIGITS)
    rand = os.urandom(8 * n).hex().encode()  # 16 hex digits an id, 15 of them used
    for k in range(3):  # positions 20-22
        buf[20 + k :: _WIDTH] = rand[k::16]
    for k in range(12):  # positions 24-35
        buf[24 + k :: _WIDTH] = rand[3 + k :: 16]
    return buf[:-1].decode().split("\n")


def time_ordered_id_floor(at: float) -> str:
    """The smallest id made at `at` (epoch seconds): every older id sorts before it."""
    h = f"{int(at * 1000):012x}"
    return f"{h[:8]}-{h[8:12]}-0000-0000-000000000000"


def new_task_id(at: float | None = None) -> str:
    return new_task_ids(1, at)[0]


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


class PauseRow(msgspec.Struct, frozen=True):
    """A pause rule as stored: its id, its selector (JSON) and when it began."""

    tenant_id: str
    id: str
    selector: bytes
    created_at: float


class SubscriptionRow(msgspec.Struct, frozen=True):
    name: str
    topic: str
    config: bytes
    created_at: float
