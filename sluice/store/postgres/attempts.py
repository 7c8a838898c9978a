"""Attempts in PostgreSQL, the hot path: claims, fenced finishes, lease renewals, the
reaper, hand-backs, and the reads of what a worker holds.

A claim is one `MATERIALIZED ... FOR UPDATE SKIP LOCKED` statement per worker, so several
server nodes claim from one database without waiting on each other; a frame of finishes
is one statement. Batch updates lock their rows in id order, so they cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from .database import Conn, PostgresDatabase, columns_of
from .history import record_history
from .logs import write_final
from .notifications import write_ended, write_notices
from .queries import Q
from .writer import task_columns, task_row


class PostgresAttempts(PostgresDatabase):
    async def claim_tasks(
        self, requests: list[ClaimRequest], now: float, lease_s: float
    ) -> list[list[ClaimedTask]]:
        lease_until = now + lease_s
        out = []
        # Each request is one statement, atomic on its own; no transaction spans them.
        async with self.fast.acquire() as conn:
            for r in requests:
                args = [r.tenant_id, list(r.functions), now, r.limit, r.worker, lease_until]
                parts = None if r.partitions is None else list(r.partitions)
                shared = r.tenant_id == SHARED  # a shared pool claims across tenants
                if shared and r.tenants is not None:
                    # Its few rows, one index scan per tenant, are merged by a sort: the
                    # fast pool prices sorts out (FAST_SETTINGS), so it is let back in.
                    async with conn.transaction():
                        await conn.execute("SET LOCAL enable_sort = on")
                        rows = await conn.fetch(
                            Q["claim_shared_for"], *args, list(r.exclude), parts, list(r.tenants)
                        )
                elif r.priority is None:
                    if shared:
                        rows = await conn.fetch(Q["claim_shared"], *args, list(r.exclude), parts)
                    else:
                        rows = await conn.fetch(Q["claim_tasks"], *args, parts)
                elif shared:
                    rows = await conn.fetch(
                        Q["claim_shared_level"], *args, r.priority, list(r.exclude), parts
                    )
                else:
                    rows = await conn.fetch(Q["claim_level"], *args, r.priority, parts)
                claimed = sorted(rows, key=fair_order)  # RETURNING yields no set order
                out.append([ClaimedTask(*row) for row in claimed])
        return out

    async def submit_leased(
        self, tenant_id: str, tasks: list[NewTask], now: float, worker: str,
        lease: list[str], lease_s: float,
    ) -> list[ClaimedTask]:  # fmt: skip
        """Direct dispatch: insert unkeyed tasks and lease those named in `lease` to
        `worker`, in one commit; the leased ones come back in fair order."""
        until = now + lease_s
        if len(tasks) == 1 and lease == [tasks[0].id] and tasks[0].state == READY:
            # A lone task, the usual single submit to an idle worker: one row, no arrays.
            t = tasks[0]
            row = task_row(tenant_id, t, now)
            await self.pool.execute(Q["insert_one_leased"], *row[:4], RUNNING, *row[5:], 1,
                                    worker, until, now)  # fmt: skip
            return [leased_at_submit(tenant_id, t, now, until)]
        rows = await self._fetch(Q["insert_leased"], tenant_id, *task_columns(tasks, now),
                                 lease, worker, until)  # fmt: skip
        return [ClaimedTask(*row) for row in sorted(rows, key=fair_order)]

    async def promote_leased(
        self, tenant_id: str, task_ids: list[str], now: float, worker: str,
        functions: tuple[str, ...], limit: int, lease_s: float, due_by: float | None = None,
    ) -> list[ClaimedTask]:  # fmt: skip
        """Direct dispatch of due delayed tasks: up to `limit` of `task_ids` (the
        tenant's, of `functions`) made ready and leased to `worker` in one commit."""
        # Not on the claims' pool: its sessions turn sorting off (for the ready index's
        # order), and these few rows come in the order of no index.
        rows = await self._fetch(Q["promote_leased"], tenant_id, task_ids, now, worker,
                                 now + lease_s, limit, list(functions),
                                 now if due_by is None else due_by)  # fmt: skip
        return [leased_ahead(row, now) for row in sorted(rows, key=fair_order)]

    async def finish_attempts(self, finishes: list[Finish], now: float) -> list[str]:
        # One statement finishes every fenced attempt of the frame; a task named twice in
        # the frame (a resend) is judged after the first has been written.
        first: dict[str, Finish] = {}
        for f in finishes:
            first.setdefault(f.task_id, f)
        # In id order: concurrent batches lock their rows in the same order (no deadlock).
        batch = sorted(first.values(), key=lambda f: f.task_id)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q["finish_task"], *_finish_columns(batch, now))
            done = {r[0] for r in rows}
            accepted = [f for f in batch if f.task_id in done]
            if accepted:
                await conn.execute(Q["insert_attempt"], *_attempt_columns(accepted, now))
                await write_final(conn, accepted)
                if any(f.notify for f in accepted):
                    await write_notices(conn, accepted, now)
            out = []
            for f in finishes:
                if first[f.task_id] is f and f.task_id in done:
                    out.append(ACCEPTED)
                else:
                    out.append(await _judge_refused(conn, f, now))
        return out

    async def extend_leases(self, renewals: list[LeaseRenewal], lease_until: float) -> None:
        rows = sorted(
            (task_id, r.tenant_id, r.worker) for r in renewals for task_id in r.task_ids
        )  # by id: the lock order every batch update here follows
        if rows:
            ids, tenants, workers = (list(c) for c in zip(*rows, strict=True))
            await self.fast.execute(Q["extend_leases"], tenants, workers, ids, lease_until)

    async def reap_leases(self, now: float, limit: int, hooks: Hooks | None = None) -> list[Reaped]:
        out = []
        async with self.pool.acquire() as conn, conn.transaction():
            expired = await conn.fetch(Q["expired_leases"], now, limit)
            lost = []
            for tenant_id, task_id, attempt, max_attempts, owner, dispatched_at, fn in expired:
                state = await conn.fetchval(Q["requeue_lost"], task_id, tenant_id, attempt, now)
                if state is None:
                    continue
                lost.append(
                    (tenant_id, task_id, attempt, owner, dispatched_at, None, now, "lost",
                     "LeaseExpired", "the worker stopped renewing its lease", None, None, now, None)
                )  # fmt: skip
                out.append(Reaped(tenant_id, task_id, state, fn, attempt, max_attempts))
            if lost:
                await conn.execute(Q["insert_attempt"], *columns_of(lost, 14))
                await record_history(conn, now, [(t[0], t[1], "lease_lost", t[3]) for t in lost])
            if hooks is not None:
                for event in ("failed", "dead"):
                    ids = [r.task_id for r in out if event_of(r.state) == event]
                    await write_ended(conn, hooks, ids, event, now)
        return out

    async def release_tasks(
        self, tenant_id: str, worker: str, held: list[Held], now: float
    ) -> list[str]:
        if not held:
            return []
        # In id order, as every batch update here.
        ids, attempts, dispatched = columns_of(sorted(held), 3)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                Q["release_task"], tenant_id, ids, attempts, dispatched, worker, now
            )
            released = {r[0]: r[1] for r in rows}  # id: its tenant (a shared pool's: anyone's)
            await record_history(
                conn, now, [(released[i], i, "handed_back", worker) for i in ids if i in released]
            )
        return [i for i in ids if i in released]

    async def leased_to(self, tenant_id: str, worker: str) -> list[Held]:
        rows = await self._fetch(Q["leased_to"], tenant_id, worker)
        return [(r[0], r[1], r[2]) for r in rows]

    async def get_claimed(
        self, tenant_id: str, worker: str, task_ids: list[str]
    ) -> list[ClaimedTask]:
        rows = await self._fetch(Q["get_claimed"], tenant_id, task_ids, worker)
        return [ClaimedTask(*r) for r in sorted(rows, key=fair_order)]

    async def list_attempts(self, tenant_id: str, task_id: str) -> list[AttemptRecord]:
        rows = await self._fetch(Q["list_attempts"], tenant_id, task_id)
        return [AttemptRecord(*r) for r in rows]


def fair_order(row: Any) -> tuple[int, float, str]:
    """A claimed row's place: priority first, then start tag, then id."""
    return (-row[7], row[14], row[1])  # 14: stag (the trace columns follow it)


def _finish_columns(finishes: Sequence[Finish], now: float) -> list[list[Any]]:
    rows = []
    for f in finishes:
        terminal = f.next_state in ("succeeded", "dead", "cancelled")
        rows.append((
            f.task_id, f.tenant_id, f.attempt, f.worker, f.next_state,
            f.finished_at if terminal else None, f.result,
            f.error_message if f.next_state != "succeeded" else None,
            f.run_at, now if f.next_state == "ready" else None, int(f.throttled),
        ))  # fmt: skip
    return columns_of(rows, 11)


def _attempt_columns(finishes: Sequence[Finish], now: float) -> list[list[Any]]:
    rows = [
        (f.tenant_id, f.task_id, f.attempt, f.worker, f.dispatched_at, f.started_at,
         f.finished_at, f.outcome, f.error_type, f.error_message, f.traceback, f.ready_at, now,
         f.held_s)
        for f in finishes
    ]  # fmt: skip
    return columns_of(rows, 14)


async def _judge_refused(conn: Conn, f: Finish, now: float) -> str:
    """A finish that did not hold the lease: a resend of what is stored, or stale."""
    held = await conn.fetchval(Q["get_attempt_worker"], f.tenant_id, f.task_id, f.attempt)
    if held is not None and held == f.worker:
        return DUPLICATE
    if await conn.fetchval(Q["task_exists"], f.tenant_id, f.task_id) is not None:
        stale = f"attempt {f.attempt} by {f.worker}"
        await record_history(conn, now, [(f.tenant_id, f.task_id, "stale_result", stale)])
    return STALE
