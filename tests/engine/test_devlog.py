"""What `sluice dev` prints about attempts' ends: a failure or a death in one line
(function, task id, attempt, error), a capped number of them, and a summary under load."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from sluice.clock import FakeClock
from sluice.engine.devlog import LINES_PER_SUMMARY, SUMMARY_MIN, DevLog
from sluice.model import DEAD, SCHEDULED, SUCCEEDED, ClaimedTask, Finish
from sluice.store import ACCEPTED, DUPLICATE


def claimed(task_id: str, attempt: int = 1) -> ClaimedTask:
    return ClaimedTask(
        tenant_id="t", id=task_id, function="send_welcome", payload=b"", attempt=attempt,
        max_attempts=5, timeout_s=None, priority=5, created_at=0.0, dispatched_at=0.0,
        lease_until=0.0,
    )  # fmt: skip


def finish(task_id: str, next_state: str, attempt: int = 1, **fields: Any) -> Finish:
    return Finish(
        tenant_id="t", task_id=task_id, attempt=attempt, worker="w", next_state=next_state,
        outcome="failed" if next_state != SUCCEEDED else "succeeded", dispatched_at=None,
        started_at=None, finished_at=0.0, **fields,
    )  # fmt: skip


@pytest.fixture
def devlog() -> DevLog:
    clock = FakeClock()
    return DevLog(SimpleNamespace(clock=clock))  # type: ignore[arg-type]


def test_a_failure_and_a_death_are_one_readable_line_each(
    devlog: DevLog, caplog: pytest.LogCaptureFixture
) -> None:
    error = {
        "error_type": "TypeError",
        "error_message": "send_welcome() missing 2 required positional arguments\nmore",
    }
    now = 1_700_000_000.0
    failed = finish("a1", SCHEDULED, run_at=now + 2.0, **error)
    dead = finish("b2", DEAD, attempt=5, **error)
    with caplog.at_level(logging.INFO, logger="sluice.dev"):
        devlog.attempts_ended([failed, dead], [ACCEPTED, ACCEPTED], [claimed("a1"), None])
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "task failed: send_welcome a1 attempt 1/5: TypeError: send_welcome() missing 2 "
        "required positional arguments …; retry in 2.0 s",
        "task dead: ? b2 after attempt 5: TypeError: send_welcome() missing 2 required "
        "positional arguments … (sluice tasks get b2)",
    ]


def test_a_flood_of_failures_is_capped_and_summarized(
    devlog: DevLog, caplog: pytest.LogCaptureFixture
) -> None:
    n = LINES_PER_SUMMARY + 30
    finishes = [finish(f"t{i}", DEAD, error_type="ValueError") for i in range(n)]
    finishes += [finish("ok", SUCCEEDED), finish("dup", DEAD)]
    tasks = [claimed(f.task_id) for f in finishes]
    with caplog.at_level(logging.INFO, logger="sluice.dev"):
        devlog.attempts_ended(finishes, [ACCEPTED] * (n + 1) + [DUPLICATE], tasks)
        summary = devlog.summarize()
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == LINES_PER_SUMMARY
    assert summary == "last 5 s: 1 succeeded, 50 dead (30 failures not shown: " \
        "sluice tasks ls --state dead)"  # fmt: skip
    assert devlog.summarize() is None  # nothing since


def test_no_summary_without_load(devlog: DevLog) -> None:
    few = [finish(f"s{i}", SUCCEEDED) for i in range(SUMMARY_MIN - 1)]
    devlog.attempts_ended(few, [ACCEPTED] * len(few), [None] * len(few))
    assert devlog.summarize() is None
    many = [finish(f"m{i}", SUCCEEDED) for i in range(SUMMARY_MIN)]
    devlog.attempts_ended(many, [ACCEPTED] * len(many), [None] * len(many))
    assert devlog.summarize() == f"last 5 s: {SUMMARY_MIN} succeeded"
