"""Fair order in SQLite (policy/fairness.py): start tags given after promotion, the
virtual clock, where a tenant's chain goes on, and the ready backlogs."""

from __future__ import annotations

import msgspec

from .database import SQLiteDatabase
from .queries import Q


class SQLiteFairness(SQLiteDatabase):
    async def retag(self, tags: list[tuple[str, float]]) -> None:
        if tags:
            params = [{"id": task_id, "stag": stag} for task_id, stag in tags]
            await self._writer.submit(lambda c: c.executemany(Q["retag"], params))

    async def fair_clock(self) -> float | None:
        rows = await self._read(Q["fair_clock"])
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def last_tag(self, tenant_id: str, functions: list[str]) -> float | None:
        params = {"tenant_id": tenant_id, "functions": msgspec.json.encode(functions).decode()}
        rows = await self._read(Q["last_tag"], params)
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def count_ahead(self, tenant_id: str, task_id: str, limit: int) -> int:
        params = {"tenant_id": tenant_id, "id": task_id, "limit": limit}
        return int((await self._read(Q["count_ahead"], params))[0][0])

    async def ready_backlog(self) -> dict[int, int]:
        return {int(part): int(n) for part, n in await self._read(Q["ready_backlog"])}

    async def tenant_backlog(self, tenant_id: str) -> dict[int, int]:
        rows = await self._read(Q["tenant_backlog"], {"tenant_id": tenant_id})
        return {int(part): int(n) for part, n in rows}
