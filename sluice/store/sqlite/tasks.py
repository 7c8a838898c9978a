"""Tasks in SQLite: submit, read, list, cancel, delete, dead letters and their retry,
the promotion of scheduled tasks, expiry and retention."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from ...contract import DeadSelector, DeadTask, RetryPolicy, Selector, TaskSummary
from ...model import (
    CANCELLED,
    DEFAULT_MAX_ATTEMPTS,
    EXPIRED,
    NewTask,
    SubmitResult,
    TaskRecord,
    time_ordered_id_floor,
)
from ..base import Cancelled, Promoted
from ..notifications import Hooks
from .bulk import insert_rows
from .database import SMALL_OP, SQLiteDatabase
from .history import record_history
from .logs import started_of
from .notifications import write_ended
from .queries import Q

_tags_decoder = msgspec.json.Decoder(list[str])
_retry_decoder = msgspec.json.Decoder(RetryPolicy)


class SQLiteTasks(SQLiteDatabase):
    async def submit_tasks(
        self, tenant_id: str, tasks: list[NewTask], now: float
    ) -> list[SubmitResult]:
        def rows(t: NewTask) -> tuple[Any, ...]:
            return task_row(tenant_id, t, now)

        def op(conn: sqlite3.Connection) -> list[SubmitResult]:
            plain = [t for t in tasks if t.key is None]
            if plain:
                insert_rows(conn, Q["insert_task"], [rows(t) for t in plain])
                insert_payloads(conn, tenant_id, plain)
            out = []
            for t in tasks:
                if t.key is None:
                    out.append(SubmitResult(t.id, True, t.state, t.run_at))
                    continue
                if conn.execute(Q["insert_keyed_task"], rows(t)).fetchone() is not None:
                    insert_payloads(conn, tenant_id, [t])
                    out.append(SubmitResult(t.id, True, t.state, t.run_at))
                else:
                    held = conn.execute(Q["get_task_by_key"], (tenant_id, t.key)).fetchone()
                    out.append(SubmitResult(held[0], False, held[1], held[2]))
            return out

        return await self._writer.submit(op, small=len(tasks) <= SMALL_OP, rows=len(tasks))

    async def get_task(self, tenant_id: str, task_id: str) -> TaskRecord | None:
        rows = await self._read(Q["get_task"], {"tenant_id": tenant_id, "id": task_id})
        return TaskRecord(*rows[0]) if rows else None

    async def get_task_states(self, tenant_id: str, task_ids: list[str]) -> dict[str, str]:
        ids = msgspec.json.encode(task_ids).decode()
        rows = await self._read(Q["get_task_states"], {"tenant_id": tenant_id, "ids": ids})
        return {r[0]: r[1] for r in rows}

    async def task_tenant(self, task_id: str) -> str | None:
        rows = await self._read(Q["task_tenant"], {"id": task_id})
        return str(rows[0][0]) if rows else None

    async def list_tasks(
        self, tenant_id: str, selector: Selector, before: str, limit: int
    ) -> list[TaskSummary]:
        def encoded(values: Sequence[str] | None) -> str | None:
            return None if values is None else msgspec.json.encode(values).decode()

        params = {
            "tenant_id": tenant_id,
            "before": before or "~",  # "~" sorts after every id
            "functions": encoded(selector.function),
            "states": encoded(selector.state),
            "tags": encoded(selector.tags),
            "priority_min": selector.priority_min,
            "priority_max": selector.priority_max,
            "created_after": selector.created_after,
            "created_before": selector.created_before,
            "key": selector.key,
            "limit": limit,
        }
        rows = await self._read(Q["list_tasks"], params)
        out = []
        for task_id, function, state, priority, attempt, created, finished, key, tags in rows:
            tag_list = _tags_decoder.decode(tags) if tags else []
            out.append(
                TaskSummary(task_id, function, state, priority, attempt, created, finished, key,
                            tag_list)
            )  # fmt: skip
        return out

    async def cancel_tasks(
        self, tenant_id: str, task_ids: list[str], now: float, hooks: Hooks | None = None
    ) -> list[Cancelled]:
        ids = msgspec.json.encode(task_ids).decode()

        def op(conn: sqlite3.Connection) -> list[Cancelled]:
            found = conn.execute(
                Q["cancellable_tasks"], {"tenant_id": tenant_id, "ids": ids}
            ).fetchall()
            # executemany: the rows go through SQLite in C, not one Python call each.
            conn.executemany(
                Q["cancel_task"],
                [{"tenant_id": tenant_id, "id": row[0], "now": now} for row in found],
            )
            # A running attempt ends here; the worker's late answer is then a duplicate.
            conn.executemany(
                Q["insert_attempt"],
                [
                    (tenant_id, task_id, attempt, owner, dispatched_at,
                     started_of(dispatched_at, started_at), now, "cancelled", None,
                     "cancelled while running", None, ready_at, now, None)
                    for task_id, state, attempt, owner, dispatched_at, started_at, ready_at
                    in found
                    if state == "running"
                ],
            )  # fmt: skip
            record_history(
                conn, now, [(tenant_id, row[0], "cancelled", f"was {row[1]}") for row in found]
            )
            if hooks is not None:
                write_ended(conn, hooks, [row[0] for row in found], CANCELLED, now)
            return [
                Cancelled(row[0], row[1], row[3] if row[1] == "running" else None) for row in found
            ]

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)

    async def delete_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        ids = msgspec.json.encode(task_ids).decode()

        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                Q["deletable_tasks"], {"tenant_id": tenant_id, "ids": ids}
            ).fetchall()
            _delete(conn, [(tenant_id, r[0]) for r in rows])
            return [r[0] for r in rows]

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)

    async def list_dead(
        self, tenant_id: str, selector: DeadSelector, after: str, limit: int
    ) -> list[DeadTask]:
        params = {"tenant_id": tenant_id, "function": selector.function, "since": selector.since,
                  "until": selector.until, "after": after, "limit": limit}  # fmt: skip
        return [DeadTask(*r) for r in await self._read(Q["list_dead"], params)]

    async def retry_dead(
        self, tenant_id: str, task_ids: list[str], max_attempts: dict[str, int], now: float
    ) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            retried = []
            for task_id in task_ids:
                row = conn.execute(
                    Q["get_task"], {"tenant_id": tenant_id, "id": task_id}
                ).fetchone()
                if row is None:
                    continue
                params = {"tenant_id": tenant_id, "id": task_id, "now": now,
                          "max_attempts": _allowance(row[23], row[2], max_attempts)}  # fmt: skip
                if conn.execute(Q["retry_task"], params).rowcount == 1:
                    retried.append(task_id)
            record_history(conn, now, [(tenant_id, i, "retried", "by hand") for i in retried])
            return retried

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)

    async def due_soon(self, until: float, limit: int) -> list[tuple[float, str, str]]:
        rows = await self._read(Q["due_soon"], {"until": until, "limit": limit})
        return [(r[0], r[1], r[2]) for r in rows]

    async def promote_due(self, now: float, limit: int) -> list[Promoted]:
        def op(conn: sqlite3.Connection) -> list[Promoted]:
            rows = conn.execute(Q["promote_due"], {"now": now, "limit": limit})
            return [Promoted(*r) for r in rows]

        return await self._writer.submit(op)

    async def promote_tasks(self, task_ids: list[str], now: float) -> list[Promoted]:
        ids = msgspec.json.encode(task_ids).decode()

        def op(conn: sqlite3.Connection) -> list[Promoted]:
            rows = conn.execute(Q["promote_tasks"], {"ids": ids, "now": now})
            return [Promoted(*r) for r in rows]

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)

    async def expire_tasks(
        self, now: float, limit: int, hooks: Hooks | None = None
    ) -> list[tuple[str, str]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            found = conn.execute(Q["expire_tasks"], {"now": now, "limit": limit}).fetchall()
            rows = [(r[0], r[1]) for r in found]
            record_history(conn, now, [(t, i, "expired", None) for t, i in rows])
            if hooks is not None:
                write_ended(conn, hooks, [i for _, i in rows], EXPIRED, now)
            return rows

        return await self._writer.submit(op)

    async def purge_tasks(self, before: float, limit: int) -> int:
        """Delete ended tasks (with their attempts and history) that ended before `before`;
        their keys are free again."""
        id_before = time_ordered_id_floor(before)

        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                Q["retained_past"], {"id_before": id_before, "before": before, "limit": limit}
            ).fetchall()
            _delete(conn, rows)
            return len(rows)

        return await self._writer.submit(op)


# Payloads longer than this live in the payloads table, written once (0021_payloads.sql);
# shorter ones stay on the task's row, where a claim reads them for free.
INLINE_PAYLOAD_BYTES = 2048


def task_row(tenant_id: str, t: NewTask, now: float) -> tuple[Any, ...]:
    """insert_task's (and insert_keyed_task's) positional parameters; a large payload
    goes by `insert_payloads` instead."""
    ready_at = now if t.state == "ready" else None
    payload = t.payload if len(t.payload) <= INLINE_PAYLOAD_BYTES else b""
    return (
        t.id, tenant_id, t.function, payload, t.state, t.priority, t.stag, t.key, t.tags,
        t.max_attempts, t.timeout_s, t.run_at, t.expires_at, now, ready_at, t.retry,
        t.partition, t.trace_parent, t.trace_state, t.webhooks,
    )  # fmt: skip


def insert_payloads(conn: sqlite3.Connection, tenant_id: str, tasks: Sequence[NewTask]) -> None:
    """The large payloads of tasks just inserted, beside them (task_row left them out)."""
    large = [(tenant_id, t.id, t.payload) for t in tasks if len(t.payload) > INLINE_PAYLOAD_BYTES]
    if large:
        conn.executemany(Q["insert_payload"], large)


def _delete(conn: sqlite3.Connection, tasks: Sequence[tuple[str, str]]) -> None:
    """Delete (tenant id, task id) tasks with their attempts and history."""
    params = [{"tenant_id": tenant_id, "id": task_id} for tenant_id, task_id in tasks]
    conn.executemany(Q["delete_attempts"], params)
    conn.executemany(Q["delete_history"], params)
    conn.executemany(Q["delete_task_logs"], params)
    conn.executemany(Q["delete_task_notifications"], params)
    conn.executemany(Q["delete_task"], params)
    conn.executemany(Q["delete_payload"], params)


def _allowance(retry: bytes | None, function: str, by_function: dict[str, int]) -> int:
    """A retried task's new allowance: its own policy's, else its function's, else the
    default (never its previous max_attempts, which already counts the past series)."""
    if retry is not None:
        return _retry_decoder.decode(retry).max_attempts
    return by_function.get(function, DEFAULT_MAX_ATTEMPTS)
