"""The store contract for captured log lines, on every backend: lines of a running attempt
are kept only from its worker (and stay after it dies), a finished attempt's come with its
fenced finish, reads filter and page in (attempt, seq) order, a task keeps 1 MiB across
attempts, and retention deletes succeeded tasks' lines only."""

from __future__ import annotations

import msgspec
import pytest

from sluice.contract import MAX_EPOCH
from sluice.model import DEAD, MARKER, SCHEDULED, TASK_LOG_BYTES, LogBatch, LogRecord
from sluice.store import LogQuery, Started, Store
from tests.store.test_contract import NOW, claim, finish, new_task, submit


@pytest.fixture
async def tenant(store: Store) -> str:
    return (await store.create_tenant("acme", NOW)).id


def lines(attempt: int, start: int, n: int, level: int = 20, size: int = 10) -> list[LogRecord]:
    return [
        LogRecord(attempt, seq, NOW + seq, level, "log", "app", f"line {seq} " + "x" * size)
        for seq in range(start, start + n)
    ]


def seqs(found: list[LogRecord]) -> list[tuple[int, int]]:
    return [(r.attempt, r.seq) for r in found]


async def test_a_running_attempts_lines_are_kept_from_its_worker_only(
    store: Store, tenant: str
) -> None:
    (task_id,) = await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant, worker="w1")
    kept = await store.append_logs(
        [
            LogBatch(tenant, task_id, 1, "w1", lines(1, 0, 3)),
            LogBatch(tenant, task_id, 1, "intruder", lines(1, 3, 2)),  # not its lease
            LogBatch("other-tenant", task_id, 1, "w1", lines(1, 5, 2)),  # not its tenant
        ]
    )
    assert kept == 3
    assert seqs(await store.list_logs(tenant, task_id, LogQuery())) == [(1, 0), (1, 1), (1, 2)]
    assert await store.list_logs("other-tenant", task_id, LogQuery()) == []
    await store.mark_started([Started(tenant, task_id, 1, "w1", NOW + 5)])
    await store.mark_started([Started(tenant, task_id, 1, "intruder", NOW + 9)])
    got = await store.get_task(tenant, task_id)
    assert got is not None and got.started_at == NOW + 5
    # The finish brings the last lines and drops those that fell out of the tail window.
    done = msgspec.structs.replace(
        finish(task), logs=lines(1, 3, 2), log_drop=(1, 2), ready_at=task.ready_at
    )
    await store.finish_attempts([done], NOW + 10)
    assert seqs(await store.list_logs(tenant, task_id, LogQuery())) == [
        (1, 0),
        (1, 2),
        (1, 3),
        (1, 4),
    ]
    # Lines of a finished attempt from its worker (sent before it learned of the end) stay.
    assert await store.append_logs([LogBatch(tenant, task_id, 1, "w1", lines(1, 5, 1))]) == 1
    attempts = await store.list_attempts(tenant, task_id)
    assert attempts[0].ready_at == NOW and attempts[0].recorded_at == NOW + 10


async def test_reads_filter_by_attempt_level_and_text_and_page_by_cursor(
    store: Store, tenant: str
) -> None:
    (task_id,) = await submit(store, tenant, new_task())
    await claim(store, tenant)
    batch = [*lines(1, 0, 4), LogRecord(1, 4, NOW, 40, "stderr", "stderr", "Boom Failed")]
    await store.append_logs([LogBatch(tenant, task_id, 1, "w1", batch)])
    every = await store.list_logs(tenant, task_id, LogQuery())
    assert len(every) == 5
    assert seqs(await store.list_logs(tenant, task_id, LogQuery(level=30))) == [(1, 4)]
    assert seqs(await store.list_logs(tenant, task_id, LogQuery(text="boom f"))) == [(1, 4)]
    assert await store.list_logs(tenant, task_id, LogQuery(attempt=2)) == []
    page = await store.list_logs(tenant, task_id, LogQuery(limit=2))
    rest = await store.list_logs(tenant, task_id, LogQuery(after=(1, page[-1].seq)))
    assert seqs(page + rest) == seqs(every)
    # A text with LIKE's wildcards is only text.
    assert await store.list_logs(tenant, task_id, LogQuery(text="%")) == []


async def test_a_task_keeps_its_latest_attempts_lines_within_its_budget(
    store: Store, tenant: str
) -> None:
    (task_id,) = await submit(store, tenant, new_task(max_attempts=5))
    per_attempt = TASK_LOG_BYTES // 2  # two attempts fill the budget; the third overflows
    for attempt in (1, 2, 3):
        (task,) = await claim(store, tenant, now=NOW + attempt)
        assert task.attempt == attempt
        logged = lines(attempt, 0, 8, size=per_attempt // 8 - 60)
        state = SCHEDULED if attempt < 3 else DEAD
        end = msgspec.structs.replace(
            finish(task, next_state=state, outcome="failed", run_at=NOW, error_message="no"),
            logs=logged,
        )
        assert await store.finish_attempts([end], NOW + attempt) == ["accepted"]
        if state == SCHEDULED:
            await store.promote_due(NOW + 100, 10)
    kept = await store.list_logs(tenant, task_id, LogQuery())
    by_attempt = {(r.attempt, r.stream) for r in kept}
    assert by_attempt == {(1, MARKER), (2, "log"), (3, "log")}
    (marker,) = [r for r in kept if r.stream == MARKER]
    assert "dropped" in marker.message


async def test_retention_deletes_the_lines_of_succeeded_tasks_only(
    store: Store, tenant: str
) -> None:
    ok_id, dead_id = await submit(store, tenant, new_task(), new_task())
    for task in await claim(store, tenant):
        state = "succeeded" if task.id == ok_id else DEAD
        end = finish(task, next_state=state, outcome=state, error_message=None)
        end = msgspec.structs.replace(end, logs=lines(1, 0, 3))
        await store.finish_attempts([end], NOW + 1)
    deleted, reached = await store.purge_logs(0.0, NOW + 100, 1000)
    assert deleted == 3 and reached == NOW + 100
    assert await store.list_logs(tenant, ok_id, LogQuery()) == []
    assert len(await store.list_logs(tenant, dead_id, LogQuery())) == 3
    # A page cut by the limit says how far it looked.
    assert await store.purge_logs(0.0, NOW + 100, 2) == (0, NOW + 1)
    # A task's lines go with it.
    # (far ahead: ids are time-ordered, and a test's fake clock may have made later ones)
    assert await store.purge_tasks(MAX_EPOCH, 100) == 2
    assert await store.list_logs(tenant, dead_id, LogQuery()) == []
