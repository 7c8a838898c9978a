"""Cron schedules in PostgreSQL: their configs and firing state; a fire inserts its tasks
in the same commit as it moves the state on."""

from __future__ import annotations

from typing import Any

from ...model import NewTask, ScheduleRow
from .database import PostgresDatabase
from .queries import Q
from .writer import task_columns


class PostgresSchedules(PostgresDatabase):
    async def put_schedule(
        self,
        tenant_id: str,
        name: str,
        config: bytes,
        next_fire_at: float | None,
        now: float,
        last_floor: float = 0.0,
    ) -> None:
        await self.pool.execute(
            Q["put_schedule"], tenant_id, name, config, now, next_fire_at, next_fire_at,
            last_floor,
        )  # fmt: skip

    async def list_schedules(self, tenant_id: str, name: str | None = None) -> list[ScheduleRow]:
        return [_schedule(r) for r in await self.pool.fetch(Q["list_schedules"], tenant_id, name)]

    async def delete_schedule(self, tenant_id: str, name: str) -> bool:
        return await self.pool.fetchval(Q["delete_schedule"], tenant_id, name) is not None

    async def pause_schedule(
        self, tenant_id: str, name: str, paused: bool, next_fire_at: float | None, now: float
    ) -> bool:
        found = await self.pool.fetchval(
            Q["pause_schedule"], tenant_id, name, int(paused), now, next_fire_at
        )
        return found is not None

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        return [_schedule(r) for r in await self.pool.fetch(Q["due_schedules"], now, limit)]

    async def fire_schedule(
        self,
        row: ScheduleRow,
        last_after: float,
        next_fire_at: float | None,
        skipped: int,
        tasks: list[NewTask],
        now: float,
    ) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await conn.fetchval(
                Q["advance_schedule"], row.tenant_id, row.name, row.last_fire_at, last_after,
                next_fire_at, len(tasks), skipped,
            )  # fmt: skip
            if moved is None:
                return False
            if tasks:  # keyed by fire time: a second guard against a double fire
                await conn.execute(Q["insert_keyed_task"], row.tenant_id, *task_columns(tasks, now))
            return True


def _schedule(row: Any) -> ScheduleRow:
    tenant_id, name, config, paused, created, last, next_at, fired, skipped = row
    return ScheduleRow(
        tenant_id, name, config, bool(paused), created, last, next_at, fired, skipped
    )
