"""What the API answers, as the client reads it.

These mirror the server's response bodies (sluice/api/schemas.py) on purpose: the client
imports no server code, so `pip install sluice` stays small.
"""

from __future__ import annotations

from typing import Any

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


class _ErrorBody(msgspec.Struct):
    status: int
    code: str
    message: str
    field: str | None = None


class _Error(msgspec.Struct):
    error: _ErrorBody
