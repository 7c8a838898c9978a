"""Pause rules in SQLite, and the tasks they hold (DESIGN §3: a pause is a rule, not a
state; held tasks wait as `paused`)."""

from __future__ import annotations

import sqlite3

import msgspec

from ...model import PauseRow
from .database import SMALL_OP, SQLiteDatabase
from .queries import Q


class SQLitePauses(SQLiteDatabase):
    async def create_pause(
        self, tenant_id: str, pause_id: str, selector: bytes, now: float
    ) -> None:
        params = {"tenant_id": tenant_id, "id": pause_id, "selector": selector.decode(), "now": now}
        await self._writer.submit(lambda c: c.execute(Q["insert_pause"], params), small=True)

    async def list_pauses(self, tenant_id: str | None) -> list[PauseRow]:
        rows = await self._read(Q["list_pauses"], {"tenant_id": tenant_id})
        return [PauseRow(t, i, s.encode(), at) for t, i, s, at in rows]

    async def delete_pause(self, tenant_id: str, pause_id: str) -> bytes | None:
        params = {"tenant_id": tenant_id, "id": pause_id}

        def op(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(Q["delete_pause"], params).fetchone()
            return None if row is None else str(row[0]).encode()

        return await self._writer.submit(op, small=True)

    async def hold_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        params = {"tenant_id": tenant_id, "ids": msgspec.json.encode(task_ids).decode()}

        def op(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute(Q["hold_tasks"], params).fetchall()]

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)

    async def unhold_tasks(
        self, tenant_id: str, task_ids: list[str], now: float
    ) -> list[tuple[str, str]]:
        params = {"tenant_id": tenant_id, "ids": msgspec.json.encode(task_ids).decode(),
                  "now": now}  # fmt: skip

        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return [(r[0], r[1]) for r in conn.execute(Q["unhold_tasks"], params).fetchall()]

        return await self._writer.submit(op, small=len(task_ids) <= SMALL_OP)
