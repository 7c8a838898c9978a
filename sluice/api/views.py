"""Response bodies built from store records: a task with its timeline, a submit's outcome.

The bodies themselves are the contract's (sluice/contract/). Task arguments and
results stay raw JSON (`msgspec.Raw`) on their way out: the server never decodes them.
"""

from __future__ import annotations

import msgspec

from ..contract import Attempt, SubmitOutcome, Task, TimelineEntry
from ..model import AttemptRecord, HistoryEntry, SubmitResult, TaskRecord


class _PayloadParts(msgspec.Struct):
    args: msgspec.Raw = msgspec.Raw(b"[]")
    kwargs: msgspec.Raw = msgspec.Raw(b"{}")


_payload_decoder = msgspec.json.Decoder(_PayloadParts)
_tags_decoder = msgspec.json.Decoder(list[str])


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
        attempts=[Attempt(*msgspec.structs.astuple(a)[1:]) for a in attempts],
    )


def timeline(
    task: TaskRecord, attempts: list[AttemptRecord], events: list[HistoryEntry]
) -> list[TimelineEntry]:
    """Every stage the task went through, read from the timestamps the hot path writes."""
    out = [TimelineEntry(task.created_at, "submitted")]
    if task.run_at > task.created_at:
        out.append(TimelineEntry(task.created_at, "scheduled", detail=f"run_at {task.run_at}"))
    if task.state != "scheduled" or task.attempt > 0:
        # ready_at is rewritten by each retry; the first readiness is the original run_at.
        first = task.ready_at if task.attempt == 0 and task.ready_at else task.run_at
        out.append(TimelineEntry(first, "ready"))
    for a in attempts:
        if a.dispatched_at is not None:
            out.append(TimelineEntry(a.dispatched_at, "dispatched", a.attempt, a.worker))
        if a.started_at is not None:
            out.append(TimelineEntry(a.started_at, "started", a.attempt))
        if a.finished_at is not None:
            out.append(TimelineEntry(a.finished_at, "finished", a.attempt, a.outcome))
    finished = {a.attempt for a in attempts}
    if task.attempt > 0 and task.attempt not in finished and task.dispatched_at is not None:
        out.append(TimelineEntry(task.dispatched_at, "dispatched", task.attempt, task.lease_owner))
    for e in events:
        out.append(TimelineEntry(e.at, e.kind, detail=e.detail))
    if task.finished_at is not None:
        out.append(TimelineEntry(task.finished_at, task.state))
    out.sort(key=lambda entry: entry.at)
    return out
