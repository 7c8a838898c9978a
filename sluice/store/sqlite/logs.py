"""Captured log lines in SQLite (DESIGN §8 "Logs"): one row a line, apart from the task
row; lines of a running attempt fenced on its worker, a finished attempt's written in its
fenced finish (attempts.py calls `write_final`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from ...model import MARKER, TASK_LOG_BYTES, Finish, LogBatch, LogRecord, dropped_attempt
from ..base import LogQuery, ProgressNote, Started, progress_json
from .database import SQLiteDatabase
from .queries import Q


def started_of(dispatched_at: float | None, started_at: float | None) -> float | None:
    """The running attempt's start, if its worker reported one (the column is not cleared
    when the task is dispatched again: an older value is an earlier attempt's)."""
    if started_at is None or dispatched_at is None or started_at < dispatched_at:
        return None
    return started_at


class SQLiteLogs(SQLiteDatabase):
    async def append_logs(self, batches: list[LogBatch]) -> int:
        def op(conn: sqlite3.Connection) -> int:
            kept = 0
            for b in batches:
                fence = {
                    "tenant_id": b.tenant_id,
                    "task_id": b.task_id,
                    "attempt": b.attempt,
                    "worker": b.worker,
                }
                if conn.execute(Q["log_fence"], fence).fetchone() is None:
                    continue
                _write(conn, b.tenant_id, b.task_id, b.attempt, b.lines, b.drop)
                kept += len(b.lines)
            return kept

        return await self._writer.submit(op)

    async def mark_started(self, starts: list[Started]) -> None:
        params = [msgspec_dict(s) for s in starts]
        if params:
            await self._writer.submit(lambda c: c.executemany(Q["mark_started"], params))

    async def record_progress(self, notes: list[ProgressNote]) -> None:
        params = [
            {
                "tenant_id": n.tenant_id,
                "task_id": n.task_id,
                "attempt": n.attempt,
                "worker": n.worker,
                "progress": progress_json(n),
            }
            for n in notes
        ]
        if params:
            await self._writer.submit(lambda c: c.executemany(Q["record_progress"], params))

    async def list_logs(self, tenant_id: str, task_id: str, query: LogQuery) -> list[LogRecord]:
        params = {
            "tenant_id": tenant_id,
            "task_id": task_id,
            "after_attempt": query.after[0],
            "after_seq": query.after[1],
            "attempt": query.attempt,
            "level": query.level,
            "text": query.text,
            "limit": query.limit,
        }
        return [LogRecord(*row) for row in await self._read(Q["list_logs"], params)]

    async def purge_logs(self, after: float, before: float, limit: int) -> tuple[int, float]:
        def op(conn: sqlite3.Connection) -> tuple[int, float]:
            rows = conn.execute(
                Q["logs_past"], {"after": after, "before": before, "limit": limit}
            ).fetchall()
            gone = [
                {"tenant_id": r[0], "task_id": r[1], "attempt": r[2], "seq": r[3]}
                for r in rows
                if r[5] is None or r[5] == "succeeded"
            ]
            conn.executemany(Q["delete_logs"], gone)
            return len(gone), (rows[-1][4] if len(rows) == limit else before)

        return await self._writer.submit(op)


def msgspec_dict(s: Started) -> dict[str, Any]:
    return {
        "tenant_id": s.tenant_id,
        "task_id": s.task_id,
        "attempt": s.attempt,
        "worker": s.worker,
        "started_at": s.started_at,
    }


def write_final(conn: sqlite3.Connection, f: Finish) -> None:
    """A finished attempt's last lines, in its finish's transaction."""
    if f.logs or f.log_drop is not None:
        _write(conn, f.tenant_id, f.task_id, f.attempt, f.logs, f.log_drop)
        if f.attempt > 1:
            _keep_budget(conn, f.tenant_id, f.task_id, f.attempt)


def _write(
    conn: sqlite3.Connection,
    tenant_id: str,
    task_id: str,
    attempt: int,
    lines: list[LogRecord],
    drop: tuple[int, int] | None,
) -> None:
    if drop is not None:
        conn.execute(
            Q["drop_logs"],
            {
                "tenant_id": tenant_id,
                "task_id": task_id,
                "attempt": attempt,
                "lo": drop[0],
                "hi": drop[1],
            },
        )
    conn.executemany(
        Q["insert_logs"],
        [
            {
                "tenant_id": tenant_id,
                "task_id": task_id,
                "attempt": attempt,
                "seq": ln.seq,
                "at": ln.at,
                "level": ln.level,
                "stream": ln.stream,
                "logger": ln.logger,
                "message": ln.message,
                "extra": ln.extra,
            }
            for ln in lines
        ],
    )


def _keep_budget(conn: sqlite3.Connection, tenant_id: str, task_id: str, attempt: int) -> None:
    """A task keeps TASK_LOG_BYTES of lines: past it, the oldest attempts' lines go, and
    a marker line says so; the latest attempt's always stay."""
    key = {"tenant_id": tenant_id, "task_id": task_id}
    sizes = conn.execute(Q["log_bytes"], key).fetchall()
    total = sum(size for _, size in sizes)
    for old, size in sizes:
        if total <= TASK_LOG_BYTES or old >= attempt:
            break
        conn.execute(Q["drop_attempt_logs"], {**key, "attempt": old})
        marker = LogRecord(old, -1, 0.0, 0, MARKER, "sluice", dropped_attempt(size))
        _write(conn, tenant_id, task_id, old, [marker], None)
        total -= size
