"""Attempts in SQLite, the hot path: claims, fenced finishes, lease renewals, the reaper,
hand-backs, and the reads of what a worker holds."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ...model import READY, RUNNING, SHARED, AttemptRecord, ClaimedTask, Finish, NewTask
from ..base import (
    ACCEPTED,
    DUPLICATE,
    STALE,
    ClaimRequest,
    Held,
    LeaseRenewal,
    Reaped,
    leased_ahead,
    leased_at_submit,
)
from ..notifications import Hooks, event_of
from .bulk import insert_rows
from .database import SMALL_OP, SQLiteDatabase
from .history import record_history
from .logs import write_final
from .notifications import write_ended, write_notices
from .queries import Q
from .tasks import insert_payloads, task_row

SMALL_CLAIM = 64  # tasks a claim may take and still run inline when the writer is idle


class SQLiteAttempts(SQLiteDatabase):
    async def claim_tasks(
        self, requests: list[ClaimRequest], now: float, lease_s: float
    ) -> list[list[ClaimedTask]]:
        lease_until = now + lease_s

        def op(conn: sqlite3.Connection) -> list[list[ClaimedTask]]:
            out = []
            for r in requests:
                params = {
                    "tenant_id": r.tenant_id,
                    "worker": r.worker,
                    "functions": msgspec.json.encode(r.functions).decode(),
                    "limit": r.limit,
                    "now": now,
                    "lease_until": lease_until,
                    "exclude": msgspec.json.encode(r.exclude).decode(),
                    "parts": parts(r.partitions),
                }
                shared = r.tenant_id == SHARED  # a shared pool claims across tenants
                if shared and r.tenants is not None:
                    only = {**params, "tenants": msgspec.json.encode(r.tenants).decode()}
                    rows = conn.execute(Q["claim_shared_for"], only).fetchall()
                elif r.priority is None:
                    query = Q["claim_shared"] if shared else Q["claim_tasks"]
                    rows = conn.execute(query, params).fetchall()
                else:
                    level = {**params, "priority": r.priority}
                    query = Q["claim_shared_level"] if shared else Q["claim_level"]
                    rows = conn.execute(query, level).fetchall()
                rows.sort(key=fair_order)  # UPDATE ... RETURNING yields rows in no set order
                out.append([ClaimedTask(*row) for row in rows])
            return out

        most = sum(r.limit for r in requests)
        return await self._writer.submit(op, small=most <= SMALL_CLAIM, rows=most)

    async def submit_leased(
        self, tenant_id: str, tasks: list[NewTask], now: float, worker: str,
        lease: list[str], lease_s: float,
    ) -> list[ClaimedTask]:  # fmt: skip
        """Direct dispatch: insert unkeyed tasks and lease those named in `lease` to
        `worker`, in one commit; the leased ones come back in fair order."""
        named, until = set(lease), now + lease_s
        leased = [t for t in tasks if t.id in named and t.state == READY]
        taken = {t.id for t in leased}
        rows = [task_row(tenant_id, t, now) for t in tasks if t.id not in taken]
        # As claim_tasks leases a ready task: its first attempt, dispatched now.
        running = [(*r[:4], RUNNING, *r[5:], 1, worker, until, now)
                   for r in (task_row(tenant_id, t, now) for t in leased)]  # fmt: skip

        def op(conn: sqlite3.Connection) -> None:
            if rows:
                insert_rows(conn, Q["insert_task"], rows)
            conn.executemany(Q["insert_leased"], running)
            insert_payloads(conn, tenant_id, tasks)

        await self._writer.submit(op, small=len(tasks) <= SMALL_OP, rows=len(tasks))
        claimed = [leased_at_submit(tenant_id, t, now, until) for t in leased]
        return sorted(claimed, key=lambda c: (-c.priority, c.stag, c.id))  # fair order

    async def promote_leased(
        self, tenant_id: str, task_ids: list[str], now: float, worker: str,
        functions: tuple[str, ...], limit: int, lease_s: float, due_by: float | None = None,
    ) -> list[ClaimedTask]:  # fmt: skip
        """Direct dispatch of due delayed tasks: up to `limit` of `task_ids` (the
        tenant's, of `functions`) made ready and leased to `worker` in one commit."""
        params = {
            "tenant_id": tenant_id, "ids": msgspec.json.encode(task_ids).decode(),
            "functions": msgspec.json.encode(functions).decode(), "now": now,
            "worker": worker, "lease_until": now + lease_s, "limit": limit,
            "due_by": now if due_by is None else due_by,
        }  # fmt: skip

        def op(conn: sqlite3.Connection) -> list[ClaimedTask]:
            rows = conn.execute(Q["promote_leased"], params).fetchall()
            return [leased_ahead(row, now) for row in sorted(rows, key=fair_order)]

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP, rows=len(task_ids))

    async def finish_attempts(self, finishes: list[Finish], now: float) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            return _finish_many(conn, finishes, now)

        return await self._writer.submit(op, small=len(finishes) <= SMALL_OP, rows=len(finishes))

    async def extend_leases(self, renewals: list[LeaseRenewal], lease_until: float) -> None:
        params = [
            {
                "tenant_id": r.tenant_id,
                "worker": r.worker,
                "ids": msgspec.json.encode(r.task_ids).decode(),
                "lease_until": lease_until,
            }
            for r in renewals
            if r.task_ids
        ]
        if params:
            await self._writer.submit(lambda c: c.executemany(Q["extend_leases"], params))

    async def reap_leases(self, now: float, limit: int, hooks: Hooks | None = None) -> list[Reaped]:
        def op(conn: sqlite3.Connection) -> list[Reaped]:
            out = []
            expired = conn.execute(Q["expired_leases"], {"now": now, "limit": limit}).fetchall()
            for tenant_id, task_id, attempt, max_attempts, owner, dispatched_at, fn in expired:
                row = conn.execute(
                    Q["requeue_lost"],
                    {"id": task_id, "tenant_id": tenant_id, "attempt": attempt, "now": now},
                ).fetchone()
                if row is None:
                    continue
                conn.execute(
                    Q["insert_attempt"],
                    (tenant_id, task_id, attempt, owner, dispatched_at, None, now, "lost",
                     "LeaseExpired", "the worker stopped renewing its lease", None, None, now,
                     None),
                )  # fmt: skip
                record_history(conn, now, [(tenant_id, task_id, "lease_lost", owner)])
                out.append(Reaped(tenant_id, task_id, row[0], fn, attempt, max_attempts))
            if hooks is not None:
                for event in ("failed", "dead"):
                    ids = [r.task_id for r in out if event_of(r.state) == event]
                    write_ended(conn, hooks, ids, event, now)
            return out

        return await self._writer.submit(op)

    async def release_tasks(
        self, tenant_id: str, worker: str, held: list[Held], now: float
    ) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            released = []
            for task_id, attempt, dispatched_at in held:
                params = {"tenant_id": tenant_id, "id": task_id, "attempt": attempt,
                          "dispatched_at": dispatched_at, "worker": worker, "now": now}  # fmt: skip
                row = conn.execute(Q["release_task"], params).fetchone()
                if row is not None:
                    record_history(conn, now, [(row[0], task_id, "handed_back", worker)])
                    released.append(task_id)
            return released

        return await self._writer.submit(op)

    async def leased_to(self, tenant_id: str, worker: str) -> list[Held]:
        rows = await self._read(Q["leased_to"], {"tenant_id": tenant_id, "worker": worker})
        return [(r[0], r[1], r[2]) for r in rows]

    async def get_claimed(
        self, tenant_id: str, worker: str, task_ids: list[str]
    ) -> list[ClaimedTask]:
        ids = msgspec.json.encode(task_ids).decode()
        params = {"tenant_id": tenant_id, "worker": worker, "ids": ids}
        rows = sorted(await self._read(Q["get_claimed"], params), key=fair_order)
        return [ClaimedTask(*r) for r in rows]

    async def list_attempts(self, tenant_id: str, task_id: str) -> list[AttemptRecord]:
        rows = await self._read(Q["list_attempts"], {"tenant_id": tenant_id, "task_id": task_id})
        return [AttemptRecord(*r) for r in rows]


def parts(partitions: tuple[int, ...] | None) -> str | None:
    """A claim's partitions as a JSON array for json_each; None: every partition."""
    return None if partitions is None else msgspec.json.encode(partitions).decode()


def fair_order(row: tuple[Any, ...]) -> tuple[int, float, str]:
    """A claimed row's place: priority first, then start tag, then id."""
    return (-row[7], row[14], row[1])  # 14: stag (the trace columns follow it)


def _finish_many(conn: sqlite3.Connection, finishes: list[Finish], now: float) -> list[str]:
    """All fenced finishes of a frame in two `executemany` calls, when they all hold
    their lease (the usual case); otherwise one by one, to tell each outcome apart."""
    if len(finishes) > 1:
        conn.execute("SAVEPOINT finish_many")
        before = conn.total_changes
        conn.executemany(Q["finish_task"], [_finish_params(f, now) for f in finishes])
        if conn.total_changes - before == len(finishes):
            conn.executemany(Q["insert_attempt"], [_attempt_params(f, now) for f in finishes])
            for f in finishes:
                write_final(conn, f)
                if f.notify:
                    write_notices(conn, f, now)
            conn.execute("RELEASE finish_many")
            return [ACCEPTED] * len(finishes)
        conn.execute("ROLLBACK TO finish_many")
        conn.execute("RELEASE finish_many")
    return [_finish_one(conn, f, now) for f in finishes]


def _finish_params(f: Finish, now: float) -> tuple[Any, ...]:
    """finish_task's positional parameters."""
    terminal = f.next_state in ("succeeded", "dead", "cancelled")
    return (
        f.next_state,
        f.finished_at if terminal else None,
        f.result,
        f.error_message if f.next_state != "succeeded" else None,
        f.run_at,  # set only by a retry
        now if f.next_state == "ready" else None,
        int(f.throttled),
        f.task_id, f.tenant_id, f.attempt, f.worker,
    )  # fmt: skip


def _attempt_params(f: Finish, now: float) -> tuple[Any, ...]:
    """insert_attempt's positional parameters."""
    return (
        f.tenant_id, f.task_id, f.attempt, f.worker, f.dispatched_at, f.started_at,
        f.finished_at, f.outcome, f.error_type, f.error_message, f.traceback, f.ready_at,
        now, f.held_s,
    )  # fmt: skip


def _finish_one(conn: sqlite3.Connection, f: Finish, now: float) -> str:
    if conn.execute(Q["finish_task"], _finish_params(f, now)).rowcount != 1:
        held = conn.execute(
            Q["get_attempt_worker"],
            {"tenant_id": f.tenant_id, "task_id": f.task_id, "attempt": f.attempt},
        ).fetchone()
        if held is not None and held[0] == f.worker:
            return DUPLICATE
        key = {"tenant_id": f.tenant_id, "task_id": f.task_id}
        if conn.execute(Q["task_exists"], key).fetchone() is not None:
            stale = f"attempt {f.attempt} by {f.worker}"
            record_history(conn, now, [(f.tenant_id, f.task_id, "stale_result", stale)])
        return STALE
    conn.execute(Q["insert_attempt"], _attempt_params(f, now))
    write_final(conn, f)
    if f.notify:
        write_notices(conn, f, now)
    return ACCEPTED
