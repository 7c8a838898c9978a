"""Captured log lines in PostgreSQL (DESIGN §8 "Logs"): one row a line, apart from the
task row; lines of a running attempt fenced on its worker, a finished attempt's written in
its fenced finish (attempts.py calls `write_final`)."""

from __future__ import annotations

from collections.abc import Sequence

from ...model import MARKER, TASK_LOG_BYTES, Finish, LogBatch, LogRecord, dropped_attempt
from ..base import LogQuery, ProgressNote, Started, progress_json
from .database import Conn, PostgresDatabase, columns_of
from .queries import Q


def started_of(dispatched_at: float | None, started_at: float | None) -> float | None:
    """The running attempt's start, if its worker reported one (the column is not cleared
    when the task is dispatched again: an older value is an earlier attempt's)."""
    if started_at is None or dispatched_at is None or started_at < dispatched_at:
        return None
    return started_at


class PostgresLogs(PostgresDatabase):
    async def append_logs(self, batches: list[LogBatch]) -> int:
        kept: list[LogBatch] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for b in batches:
                if await conn.fetchval(Q["log_fence"], b.tenant_id, b.task_id, b.attempt, b.worker):
                    kept.append(b)
            await _write(conn, [(b.tenant_id, b.task_id, b.attempt, b.lines, b.drop) for b in kept])
        return sum(len(b.lines) for b in kept)

    async def mark_started(self, starts: list[Started]) -> None:
        if starts:
            rows = sorted(
                (s.task_id, s.tenant_id, s.attempt, s.worker, s.started_at) for s in starts
            )  # in id order, as every batch update of tasks
            ids, tenants, attempts, workers, at = columns_of(rows, 5)
            await self.fast.execute(Q["mark_started"], tenants, ids, attempts, workers, at)

    async def record_progress(self, notes: list[ProgressNote]) -> None:
        if notes:
            rows = sorted(
                (n.task_id, n.tenant_id, n.attempt, n.worker, progress_json(n)) for n in notes
            )  # in id order, as every batch update of tasks
            ids, tenants, attempts, workers, progress = columns_of(rows, 5)
            await self.fast.execute(Q["record_progress"], tenants, ids, attempts, workers, progress)

    async def list_logs(self, tenant_id: str, task_id: str, query: LogQuery) -> list[LogRecord]:
        rows = await self.pool.fetch(
            Q["list_logs"],
            tenant_id,
            task_id,
            query.after[0],
            query.after[1],
            query.attempt,
            query.level,
            query.text,
            query.limit,
        )
        return [LogRecord(*row) for row in rows]

    async def purge_logs(self, after: float, before: float, limit: int) -> tuple[int, float]:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q["logs_past"], after, before, limit)
            gone = [tuple(r[:4]) for r in rows if r[5] is None or r[5] == "succeeded"]
            if gone:
                await conn.execute(Q["delete_logs"], *columns_of(gone, 4))
        return len(gone), (rows[-1][4] if len(rows) == limit else before)


Written = tuple[str, str, int, Sequence[LogRecord], tuple[int, int] | None]


async def write_final(conn: Conn, finishes: list[Finish]) -> None:
    """Finished attempts' last lines, in their finishes' transaction."""
    logged = [f for f in finishes if f.logs or f.log_drop is not None]
    await _write(conn, [(f.tenant_id, f.task_id, f.attempt, f.logs, f.log_drop) for f in logged])
    for f in logged:
        if f.attempt > 1:
            await _keep_budget(conn, f.tenant_id, f.task_id, f.attempt)


async def _write(conn: Conn, batches: list[Written]) -> None:
    for tenant_id, task_id, attempt, _, drop in batches:
        if drop is not None:
            await conn.execute(Q["drop_logs"], tenant_id, task_id, attempt, drop[0], drop[1])
    rows = [
        (
            tenant_id,
            task_id,
            attempt,
            ln.seq,
            ln.at,
            ln.level,
            ln.stream,
            ln.logger,
            ln.message,
            ln.extra,
        )
        for tenant_id, task_id, attempt, lines, _ in batches
        for ln in lines
    ]
    if rows:
        await conn.execute(Q["insert_logs"], *columns_of(rows, 10))


async def _keep_budget(conn: Conn, tenant_id: str, task_id: str, attempt: int) -> None:
    """A task keeps TASK_LOG_BYTES of lines: past it, the oldest attempts' lines go, and
    a marker line says so; the latest attempt's always stay."""
    sizes = await conn.fetch(Q["log_bytes"], tenant_id, task_id)
    total = sum(size for _, size in sizes)
    for old, size in sizes:
        if total <= TASK_LOG_BYTES or old >= attempt:
            break
        await conn.execute(Q["drop_attempt_logs"], tenant_id, task_id, old)
        marker = LogRecord(old, -1, 0.0, 0, MARKER, "sluice", dropped_attempt(size))
        await _write(conn, [(tenant_id, task_id, old, [marker], None)])
        total -= size
