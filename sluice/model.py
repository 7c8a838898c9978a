"""Plain data shared by every layer: task states, function config, store records.

No I/O here. Records are frozen msgspec Structs so they are cheap to build and copy.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Final

import msgspec

# Task states (DESIGN §3). Terminal states never run again.
SCHEDULED: Final = "scheduled"
READY: Final = "ready"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"  # transient: an attempt failed and a retry is scheduled
DEAD: Final = "dead"
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"

STATES: Final = (SCHEDULED, READY, RUNNING, SUCCEEDED, DEAD, CANCELLED, EXPIRED)
TERMINAL: Final = frozenset({SUCCEEDED, DEAD, CANCELLED, EXPIRED})

MIN_PRIORITY: Final = 0
MAX_PRIORITY: Final = 9
DEFAULT_PRIORITY: Final = 5
DEFAULT_MAX_ATTEMPTS: Final = 25


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How failed attempts are retried (DESIGN §4): full-jitter exponential backoff."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_s: float = 1.0
    min_backoff_s: float = 1.0
    cap_s: float = 3600.0
    max_retry_duration_s: float = 86400.0


class FunctionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A function's defaults; a task may override priority, ttl and retry."""

    name: str
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float | None = None
    priority: int = DEFAULT_PRIORITY
    ttl_s: float | None = None
    tags: list[str] = []


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


class Tenant(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: float


# Task ids are UUIDv7-shaped: time-ordered, so inserts append to the primary-key b-tree.
_id_lock = threading.Lock()
_last_ms = 0
_seq = 0


def new_task_id() -> str:
    global _last_ms, _seq
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
        else:
            _last_ms, _seq = ms, int.from_bytes(os.urandom(2), "big") & 0x3FF
        seq = _seq & 0xFFF
    rand = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
