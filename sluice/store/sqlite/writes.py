"""Write steps shared by several store operations: events, fenced finishes, migrations.

Each runs inside the writer's transaction, on the connection it is given.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ...model import DEFAULT_MAX_ATTEMPTS, Finish, RetryPolicy
from ..base import ACCEPTED, DUPLICATE, STALE, DeadSelector
from .queries import MIGRATIONS, Q


def _event(
    conn: sqlite3.Connection,
    tenant_id: str,
    task_id: str,
    now: float,
    kind: str,
    detail: str | None,
) -> None:
    conn.execute(
        Q["insert_event"],
        {"tenant_id": tenant_id, "task_id": task_id, "now": now, "kind": kind, "detail": detail},
    )


def _finish_many(conn: sqlite3.Connection, finishes: list[Finish], now: float) -> list[str]:
    """All fenced finishes of a frame in two `executemany` calls, when they all hold
    their lease (the usual case); otherwise one by one, to tell each outcome apart."""
    if len(finishes) > 1:
        conn.execute("SAVEPOINT finish_many")
        before = conn.total_changes
        conn.executemany(Q["finish_task"], [_finish_params(f, now) for f in finishes])
        if conn.total_changes - before == len(finishes):
            conn.executemany(Q["insert_attempt"], [_attempt_params(f) for f in finishes])
            conn.execute("RELEASE finish_many")
            return [ACCEPTED] * len(finishes)
        conn.execute("ROLLBACK TO finish_many")
        conn.execute("RELEASE finish_many")
    return [_finish_one(conn, f, now) for f in finishes]


def _finish_params(f: Finish, now: float) -> dict[str, Any]:
    terminal = f.next_state in ("succeeded", "dead", "cancelled")
    return {
        "task_id": f.task_id,
        "tenant_id": f.tenant_id,
        "attempt": f.attempt,
        "worker": f.worker,
        "next_state": f.next_state,
        "finished_at": f.finished_at if terminal else None,
        "result": f.result,
        "error": f.error_message if f.next_state != "succeeded" else None,
        "run_at": f.run_at,  # set only by a retry
        "ready_at": now if f.next_state == "ready" else None,
        "throttled": int(f.throttled),
    }


def _attempt_params(f: Finish) -> dict[str, Any]:
    return {
        "tenant_id": f.tenant_id, "task_id": f.task_id, "attempt": f.attempt,
        "worker": f.worker, "dispatched_at": f.dispatched_at, "started_at": f.started_at,
        "finished_at": f.finished_at, "outcome": f.outcome, "error_type": f.error_type,
        "error_message": f.error_message, "traceback": f.traceback,
    }  # fmt: skip


def _finish_one(conn: sqlite3.Connection, f: Finish, now: float) -> str:
    if conn.execute(Q["finish_task"], _finish_params(f, now)).rowcount != 1:
        held = conn.execute(
            Q["get_attempt_worker"],
            {"tenant_id": f.tenant_id, "task_id": f.task_id, "attempt": f.attempt},
        ).fetchone()
        if held is not None and held[0] == f.worker:
            return DUPLICATE
        _event(
            conn, f.tenant_id, f.task_id, now, "stale_result", f"attempt {f.attempt} by {f.worker}"
        )
        return STALE
    conn.execute(Q["insert_attempt"], _attempt_params(f))
    return ACCEPTED


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, sql in MIGRATIONS:
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _split_statements(sql: str) -> list[str]:
    """Split a migration into statements (migrations hold no triggers or string semicolons)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


_retry_decoder = msgspec.json.Decoder(RetryPolicy)


def _allowance(retry: bytes | None, function: str, by_function: dict[str, int]) -> int:
    """A retried task's new allowance: its own policy's, else its function's, else the
    default (never its previous max_attempts, which already counts the past series)."""
    if retry is not None:
        return _retry_decoder.decode(retry).max_attempts
    return by_function.get(function, DEFAULT_MAX_ATTEMPTS)


def _dead_params(tenant_id: str, selector: DeadSelector, after: str, limit: int) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "function": selector.function,
        "since": selector.since,
        "until": selector.until,
        "after": after,
        "limit": limit,
    }


def _parts(partitions: tuple[int, ...] | None) -> str | None:
    """A claim's partitions as a JSON array for json_each; None: every partition."""
    return None if partitions is None else msgspec.json.encode(partitions).decode()


def _fair_order(row: tuple[Any, ...]) -> tuple[int, float, str]:
    return (-row[7], row[-1], row[1])  # priority first, then start tag, then id
