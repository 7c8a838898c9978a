"""Tasks in PostgreSQL: submit, read, list, cancel, delete, dead letters and their retry,
the promotion of scheduled tasks, expiry and retention."""

from __future__ import annotations

from typing import Any

import msgspec

from ...contract import DeadSelector, DeadTask, Selector, TaskSummary
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
from .database import Conn, PostgresDatabase, columns_of
from .history import record_history
from .logs import started_of
from .notifications import write_ended
from .queries import Q
from .writer import task_columns

_tags_decoder = msgspec.json.Decoder(list[str])


class PostgresTasks(PostgresDatabase):
    async def submit_tasks(
        self, tenant_id: str, tasks: list[NewTask], now: float
    ) -> list[SubmitResult]:
        plain = [t for t in tasks if t.key is None]
        # Keyed rows go in key order, so two batches racing for the same keys lock them in
        # the same order and never deadlock; the sort is stable, so within a batch the
        # first task with a key still wins.
        keyed = sorted((t for t in tasks if t.key is not None), key=lambda t: t.key or "")
        inserted: set[str] = set()
        holders: dict[str, Any] = {}
        if not keyed:
            await self._inserts.insert(tenant_id, plain, now)
            return [SubmitResult(t.id, True, t.state, t.run_at) for t in tasks]
        async with self.pool.acquire() as conn, conn.transaction():
            if plain:
                await conn.execute(Q["insert_task"], tenant_id, *task_columns(plain, now))
            if keyed:
                rows = await conn.fetch(
                    Q["insert_keyed_task"], tenant_id, *task_columns(keyed, now)
                )
                inserted = {r[0] for r in rows}
                lost = [t.key for t in keyed if t.id not in inserted]
                if lost:
                    found = await conn.fetch(Q["get_task_by_key"], tenant_id, lost)
                    holders = {r[0]: r for r in found}
        out = []
        for t in tasks:
            if t.key is None or t.id in inserted:
                out.append(SubmitResult(t.id, True, t.state, t.run_at))
            else:
                _key, held_id, state, run_at = holders[t.key]
                out.append(SubmitResult(held_id, False, state, run_at))
        return out

    async def get_task(self, tenant_id: str, task_id: str) -> TaskRecord | None:
        rows = await self._fetch(Q["get_task"], tenant_id, task_id)
        return TaskRecord(*rows[0]) if rows else None

    async def get_task_states(self, tenant_id: str, task_ids: list[str]) -> dict[str, str]:
        rows = await self._fetch(Q["get_task_states"], tenant_id, task_ids)
        return {r[0]: r[1] for r in rows}

    async def task_tenant(self, task_id: str) -> str | None:
        rows = await self._fetch(Q["task_tenant"], task_id)
        return str(rows[0][0]) if rows else None

    async def list_tasks(
        self, tenant_id: str, selector: Selector, before: str, limit: int
    ) -> list[TaskSummary]:
        tags = None if selector.tags is None else msgspec.json.encode(selector.tags).decode()
        rows = await self._fetch(
            Q["list_tasks"],
            tenant_id, before or "~",  # "~" sorts after every id
            selector.function, selector.state, tags, selector.priority_min,
            selector.priority_max, selector.created_after, selector.created_before,
            selector.key, limit,
        )  # fmt: skip
        out = []
        for task_id, function, state, priority, attempt, created, finished, key, tags_json in rows:
            tag_list = _tags_decoder.decode(tags_json) if tags_json else []
            out.append(
                TaskSummary(task_id, function, state, priority, attempt, created, finished, key,
                            tag_list)
            )  # fmt: skip
        return out

    async def cancel_tasks(
        self, tenant_id: str, task_ids: list[str], now: float, hooks: Hooks | None = None
    ) -> list[Cancelled]:
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetch(Q["cancellable_tasks"], tenant_id, task_ids)
            if not found:
                return []
            await conn.execute(Q["cancel_task"], tenant_id, [r[0] for r in found], now)
            running = [r for r in found if r[1] == "running"]
            if running:
                # A running attempt ends here; the worker's late answer is then a duplicate.
                await conn.execute(
                    Q["insert_attempt"],
                    *columns_of([
                        (tenant_id, task_id, attempt, owner, dispatched_at,
                         started_of(dispatched_at, started_at), now, "cancelled", None,
                         "cancelled while running", None, ready_at, now, None)
                        for task_id, _state, attempt, owner, dispatched_at, started_at, ready_at
                        in running
                    ], 14),
                )  # fmt: skip
            await record_history(
                conn, now, [(tenant_id, r[0], "cancelled", f"was {r[1]}") for r in found]
            )
            if hooks is not None:
                await write_ended(conn, hooks, [r[0] for r in found], CANCELLED, now)
        return [Cancelled(r[0], r[1], r[3] if r[1] == "running" else None) for r in found]

    async def delete_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        async with self.pool.acquire() as conn, conn.transaction():
            ids = [r[0] for r in await conn.fetch(Q["deletable_tasks"], tenant_id, task_ids)]
            if ids:
                await _delete(conn, tenant_id, ids)
        return ids

    async def list_dead(
        self, tenant_id: str, selector: DeadSelector, after: str, limit: int
    ) -> list[DeadTask]:
        rows = await self._fetch(
            Q["list_dead"],
            tenant_id, after, selector.function, selector.since, selector.until, limit,
        )  # fmt: skip
        return [DeadTask(*r) for r in rows]

    async def retry_dead(
        self, tenant_id: str, task_ids: list[str], max_attempts: dict[str, int], now: float
    ) -> list[str]:
        names = list(max_attempts)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                Q["retry_task"],
                tenant_id,
                task_ids,
                names,
                [max_attempts[n] for n in names],
                now,
                DEFAULT_MAX_ATTEMPTS,
            )
            retried = sorted(r[0] for r in rows)
            await record_history(conn, now, [(tenant_id, i, "retried", "by hand") for i in retried])
        return retried

    async def due_soon(self, until: float, limit: int) -> list[tuple[float, str, str]]:
        rows = await self._fetch(Q["due_soon"], until, limit)
        return [(r[0], r[1], r[2]) for r in rows]

    async def promote_due(self, now: float, limit: int) -> list[Promoted]:
        return [Promoted(*r) for r in await self.fast.fetch(Q["promote_due"], now, limit)]

    async def promote_tasks(self, task_ids: list[str], now: float) -> list[Promoted]:
        return [Promoted(*r) for r in await self.fast.fetch(Q["promote_tasks"], task_ids, now)]

    async def expire_tasks(
        self, now: float, limit: int, hooks: Hooks | None = None
    ) -> list[tuple[str, str]]:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = [(r[0], r[1]) for r in await conn.fetch(Q["expire_tasks"], now, limit)]
            await record_history(conn, now, [(t, i, "expired", None) for t, i in rows])
            if hooks is not None:
                await write_ended(conn, hooks, [i for _, i in rows], EXPIRED, now)
        return rows

    async def purge_tasks(self, before: float, limit: int) -> int:
        """Delete ended tasks (with their attempts and history) that ended before `before`;
        their keys are free again."""
        id_before = time_ordered_id_floor(before)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q["retained_past"], id_before, before, limit)
            by_tenant: dict[str, list[str]] = {}
            for tenant_id, task_id in rows:
                by_tenant.setdefault(tenant_id, []).append(task_id)
            for tenant_id, ids in by_tenant.items():
                await _delete(conn, tenant_id, ids)
        return len(rows)


async def _delete(conn: Conn, tenant_id: str, ids: list[str]) -> None:
    """Delete a tenant's tasks with their attempts and history."""
    await conn.execute(Q["delete_attempts"], tenant_id, ids)
    await conn.execute(Q["delete_history"], tenant_id, ids)
    await conn.execute(Q["delete_task_logs"], tenant_id, ids)
    await conn.execute(Q["delete_task_notifications"], tenant_id, ids)
    await conn.execute(Q["delete_task"], tenant_id, ids)
