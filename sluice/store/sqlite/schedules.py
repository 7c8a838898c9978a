"""Cron schedules in SQLite: their configs and firing state; a fire inserts its tasks in
the same commit as it moves the state on."""

from __future__ import annotations

import sqlite3
from typing import Any

from ...model import NewTask, ScheduleRow
from .database import SQLiteDatabase
from .queries import Q
from .tasks import insert_payloads, task_row


class SQLiteSchedules(SQLiteDatabase):
    async def put_schedule(
        self,
        tenant_id: str,
        name: str,
        config: bytes,
        next_fire_at: float | None,
        now: float,
        last_floor: float = 0.0,
    ) -> None:
        params = {"tenant_id": tenant_id, "name": name, "config": config.decode(), "now": now,
                  "next_fire_at": next_fire_at, "replaced_next_fire_at": next_fire_at,
                  "replaced_last_fire_at": last_floor}  # fmt: skip
        await self._writer.submit(lambda c: c.execute(Q["put_schedule"], params), small=True)

    async def list_schedules(self, tenant_id: str, name: str | None = None) -> list[ScheduleRow]:
        rows = await self._read(Q["list_schedules"], {"tenant_id": tenant_id, "name": name})
        return [_schedule(r) for r in rows]

    async def delete_schedule(self, tenant_id: str, name: str) -> bool:
        params = {"tenant_id": tenant_id, "name": name}

        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(Q["delete_schedule"], params).fetchone() is not None

        return await self._writer.submit(op, small=True)

    async def pause_schedule(
        self, tenant_id: str, name: str, paused: bool, next_fire_at: float | None, now: float
    ) -> bool:
        params = {"tenant_id": tenant_id, "name": name, "paused": int(paused), "now": now,
                  "next_fire_at": next_fire_at}  # fmt: skip

        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(Q["pause_schedule"], params).fetchone() is not None

        return await self._writer.submit(op, small=True)

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        rows = await self._read(Q["due_schedules"], {"now": now, "limit": limit})
        return [_schedule(r) for r in rows]

    async def fire_schedule(
        self,
        row: ScheduleRow,
        last_after: float,
        next_fire_at: float | None,
        skipped: int,
        tasks: list[NewTask],
        now: float,
    ) -> bool:
        params = {"tenant_id": row.tenant_id, "name": row.name, "last_before": row.last_fire_at,
                  "last_after": last_after, "next_fire_at": next_fire_at, "fired": len(tasks),
                  "skipped": skipped}  # fmt: skip

        def op(conn: sqlite3.Connection) -> bool:
            if conn.execute(Q["advance_schedule"], params).fetchone() is None:
                return False
            for t in tasks:  # keyed by fire time: a second guard against a double fire
                if conn.execute(Q["insert_keyed_task"], task_row(row.tenant_id, t, now)).fetchall():
                    insert_payloads(conn, row.tenant_id, [t])
            return True

        return await self._writer.submit(op, small=True)


def _schedule(row: tuple[Any, ...]) -> ScheduleRow:
    tenant_id, name, config, paused, created, last, next_at, fired, skipped = row
    return ScheduleRow(
        tenant_id, name, config.encode(), bool(paused), created, last, next_at, fired, skipped
    )
