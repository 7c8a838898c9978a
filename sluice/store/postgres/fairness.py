"""Fair order in PostgreSQL (policy/fairness.py): start tags given after promotion, the
virtual clock, where a tenant's chain goes on, and the ready backlogs."""

from __future__ import annotations

from .database import PostgresDatabase
from .queries import Q


class PostgresFairness(PostgresDatabase):
    async def retag(self, tags: list[tuple[str, float]]) -> None:
        if tags:
            ordered = sorted(tags)  # id order, as every batch update here
            await self.fast.execute(Q["retag"], [t[0] for t in ordered], [t[1] for t in ordered])

    async def fair_clock(self) -> float | None:
        rows = await self._fetch(Q["fair_clock"])
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def last_tag(self, tenant_id: str, functions: list[str]) -> float | None:
        rows = await self._fetch(Q["last_tag"], tenant_id, functions)
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def count_ahead(self, tenant_id: str, task_id: str, limit: int) -> int:
        return int(await self.pool.fetchval(Q["count_ahead"], tenant_id, task_id, limit))

    async def ready_backlog(self) -> dict[int, int]:
        return {int(part): int(n) for part, n in await self._fetch(Q["ready_backlog"])}

    async def tenant_backlog(self, tenant_id: str) -> dict[int, int]:
        rows = await self._fetch(Q["tenant_backlog"], tenant_id)
        return {int(part): int(n) for part, n in rows}
