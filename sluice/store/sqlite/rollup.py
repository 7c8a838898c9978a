"""Counts for metrics and stats in SQLite: per-minute rollups that every node adds its
deltas to, and the backlog snapshot the timers leader replaces every few seconds."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ...model import SHARED
from ..base import BacklogRow, RollupRow
from .database import SQLiteDatabase
from .queries import Q

_FIELDS = tuple(RollupRow.__struct_fields__)


class SQLiteRollup(SQLiteDatabase):
    async def add_rollup(self, rows: list[RollupRow]) -> None:
        params = [{f: getattr(r, f) for f in _FIELDS} for r in rows]
        if params:
            await self._writer.submit(lambda c: c.executemany(Q["add_rollup"], params))

    async def list_rollup(self, tenant_id: str | None, since: float) -> list[RollupRow]:
        query = Q["list_all_rollup"] if tenant_id is None else Q["list_rollup"]
        rows = await self._read(query, {"tenant_id": tenant_id, "since": since})
        return [RollupRow(*r) for r in rows]

    async def purge_rollup(self, before: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(Q["purge_rollup"], {"before": before}).rowcount

        return await self._writer.submit(op)

    async def count_backlog(self) -> list[BacklogRow]:
        return [BacklogRow(*r) for r in await self._read(Q["count_backlog"])]

    async def put_backlog(self, rows: list[BacklogRow], now: float) -> None:
        params = [
            {"tenant_id": r.tenant_id, "function": r.function, "state": r.state,
             "tasks": r.tasks, "oldest": r.oldest, "taken_at": now}
            for r in rows
        ]  # fmt: skip

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(Q["clear_backlog"])
            conn.executemany(Q["put_backlog"], params)

        await self._writer.submit(op)

    async def list_backlog(self, tenant_id: str | None) -> tuple[list[BacklogRow], float | None]:
        query = Q["list_all_backlog"] if tenant_id is None else Q["list_backlog"]
        rows: list[Any] = await self._read(query, {"tenant_id": tenant_id})
        taken = await self._read(Q["backlog_taken"])
        return [BacklogRow(*r[:5]) for r in rows], taken[0][0]

    async def count_load(
        self, tenant_id: str, functions: list[str], due_by: float, cap: int
    ) -> list[BacklogRow]:
        params = {"functions": msgspec.json.encode(functions).decode(), "due_by": due_by,
                  "cap": cap}  # fmt: skip
        if tenant_id == SHARED:
            rows = await self._read(Q["count_pool_load"], params)
        else:
            rows = await self._read(Q["count_load"], {**params, "tenant_id": tenant_id})
        return [BacklogRow(*r) for r in rows]
