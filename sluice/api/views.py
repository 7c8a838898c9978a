"""Response bodies built from store records: a task with its timeline, a submit's outcome.

The bodies themselves are the contract's (sluice/contract/). Task arguments and
results stay raw JSON (`msgspec.Raw`) on their way out: the server never decodes them.
"""

from __future__ import annotations

import msgspec

from ..contract import (
    Attempt,
    Stages,
    SubmitOutcome,
    Task,
    TaskProgress,
    TaskWebhook,
    TimelineEntry,
)
from ..model import (
    AFTER_KEY,
    READY,
    RUNNING,
    TERMINAL,
    AttemptRecord,
    HistoryEntry,
    SubmitResult,
    TaskRecord,
)


class _PayloadParts(msgspec.Struct):
    args: msgspec.Raw = msgspec.Raw(b"[]")
    kwargs: msgspec.Raw = msgspec.Raw(b"{}")


_payload_decoder = msgspec.json.Decoder(_PayloadParts)
_tags_decoder = msgspec.json.Decoder(list[str])
_webhooks_decoder = msgspec.json.Decoder(list[TaskWebhook])
_progress_decoder = msgspec.json.Decoder(TaskProgress)


def submit_view(r: SubmitResult) -> SubmitOutcome:
    return SubmitOutcome(r.id, r.created, r.state, r.run_at)


def task_view(task: TaskRecord, attempts: list[AttemptRecord], events: list[HistoryEntry]) -> Task:
    parts = _payload_decoder.decode(task.payload)
    return Task(
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
        attempts=[attempt_view(a) for a in attempts] + _running(task, attempts),
        follows=follows(task.key),
        webhooks=_webhooks_decoder.decode(task.webhooks) if task.webhooks else [],
        progress=_progress_decoder.decode(task.progress) if task.progress else None,
    )


def follows(key: str | None) -> str | None:
    """The task a destination's task follows, named by its key (engine/notifier.py)."""
    if key is None or not key.startswith(AFTER_KEY):
        return None
    return key.removeprefix(AFTER_KEY).partition(":")[0] or None


def attempt_view(a: AttemptRecord) -> Attempt:
    return Attempt(
        a.attempt, a.worker, a.dispatched_at, a.started_at, a.finished_at, a.outcome,
        a.error_type, a.error_message, a.traceback, a.ready_at, a.recorded_at,
        stages(a.ready_at, a.dispatched_at, a.started_at, a.finished_at, a.recorded_at,
               a.held_s),
        a.held_s,
    )  # fmt: skip


def _running(task: TaskRecord, attempts: list[AttemptRecord]) -> list[Attempt]:
    """The attempt running now, which has no row of its own until it ends."""
    if task.state != RUNNING or any(a.attempt == task.attempt for a in attempts):
        return []
    started = _started(task)
    return [
        Attempt(
            task.attempt,
            task.lease_owner,
            task.dispatched_at,
            started,
            None,
            "running",
            None,
            None,
            None,
            task.ready_at,
            None,
            stages(task.ready_at, task.dispatched_at, started, None, None),
        )
    ]


def _started(task: TaskRecord) -> float | None:
    """The running attempt's start, if its worker said (an older one is an earlier
    attempt's: the column is not cleared when the task is dispatched again)."""
    if task.started_at is None or task.dispatched_at is None:
        return None
    return task.started_at if task.started_at >= task.dispatched_at else None


def stages(
    ready: float | None,
    dispatched: float | None,
    started: float | None,
    finished: float | None,
    recorded: float | None,
    held: float | None = None,
) -> Stages:
    """An attempt's waterfall: each stage's length, once both its ends are known. The
    worker's clock stamps started and finished, so a stage is never shown below zero."""

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(max(0.0, b - a), 6)

    queued = span(ready, dispatched)
    if queued is not None and held:
        held = round(min(held, queued), 6)
        queued = round(queued - held, 6)
    return Stages(
        queued=queued,
        held=held or None,
        dispatched=span(dispatched, started),
        running=span(started, finished),
        reporting=span(finished, recorded),
    )


def timeline(
    task: TaskRecord, attempts: list[AttemptRecord], events: list[HistoryEntry]
) -> list[TimelineEntry]:
    """Every stage the task went through, read from the timestamps the hot path writes;
    an ended task's last entry is its final state."""
    out = [TimelineEntry(task.created_at, "submitted")]
    # A delayed task was scheduled first: its first readiness came after its submit (a
    # retry rewrites run_at, so once it has run, the first attempt's ready_at tells).
    first_ready = attempts[0].ready_at if attempts else task.run_at
    if first_ready is not None and first_ready > task.created_at:
        out.append(TimelineEntry(task.created_at, "scheduled", detail=f"run_at {first_ready}"))
    for a in attempts:
        if a.ready_at is not None:
            out.append(TimelineEntry(a.ready_at, "ready", a.attempt))
        if a.dispatched_at is not None:
            out.append(TimelineEntry(a.dispatched_at, "dispatched", a.attempt, a.worker))
        if a.started_at is not None:
            out.append(TimelineEntry(a.started_at, "started", a.attempt))
        if a.finished_at is not None:
            out.append(TimelineEntry(a.finished_at, "finished", a.attempt, a.outcome))
    if attempts and attempts[0].ready_at is None:  # rows written before ready_at was kept
        first = attempts[0].dispatched_at or task.created_at
        out.append(TimelineEntry(min(first, max(task.created_at, task.run_at)), "ready", 1))
    current = task.attempt + (0 if task.state == RUNNING else 1)
    waiting = task.state in (READY, RUNNING) and task.ready_at is not None
    if waiting and not any(a.attempt == current for a in attempts):
        assert task.ready_at is not None
        out.append(TimelineEntry(task.ready_at, "ready", current if task.attempt else None))
    if task.state == RUNNING and not any(a.attempt == task.attempt for a in attempts):
        if task.dispatched_at is not None:
            entry = TimelineEntry(task.dispatched_at, "dispatched", task.attempt, task.lease_owner)
            out.append(entry)
        started = _started(task)
        if started is not None:
            out.append(TimelineEntry(started, "started", task.attempt))
    for e in events:
        out.append(TimelineEntry(e.at, e.kind, detail=e.detail))
    # In time order, with the submit first: a dispatch round stamps its claims with the
    # time it began, which may be a moment before the commit of a submit it claims.
    head = 2 if len(out) > 1 and out[1].stage == "scheduled" else 1
    out[head:] = sorted(out[head:], key=lambda entry: entry.at)
    if task.state in TERMINAL:
        at = max(task.finished_at or 0.0, out[-1].at)
        out.append(TimelineEntry(at, task.state))
    return out
