"""Counts for metrics and stats in PostgreSQL: per-minute rollups that every node adds its
deltas to, and the backlog snapshot the timers leader replaces every few seconds (other
nodes read it instead of counting)."""

from __future__ import annotations

from ...model import SHARED
from ..base import BacklogRow, RollupRow
from .database import PostgresDatabase, columns_of
from .queries import Q

_WIDTH = len(RollupRow.__struct_fields__)


class PostgresRollup(PostgresDatabase):
    async def add_rollup(self, rows: list[RollupRow]) -> None:
        if rows:
            # Sorted, so two nodes upserting the same minutes lock them in one order.
            rows = sorted(rows, key=lambda r: (r.tenant_id, r.function, r.minute))
            values = [tuple(getattr(r, f) for f in RollupRow.__struct_fields__) for r in rows]
            await self.pool.execute(Q["add_rollup"], *columns_of(values, _WIDTH))

    async def list_rollup(self, tenant_id: str | None, since: float) -> list[RollupRow]:
        if tenant_id is None:
            rows = await self.pool.fetch(Q["list_all_rollup"], since)
        else:
            rows = await self.pool.fetch(Q["list_rollup"], tenant_id, since)
        return [RollupRow(*r) for r in rows]

    async def purge_rollup(self, before: float) -> int:
        return int(await self.pool.fetchval(Q["purge_rollup"], before))

    async def count_backlog(self) -> list[BacklogRow]:
        return [BacklogRow(*r) for r in await self.pool.fetch(Q["count_backlog"])]

    async def put_backlog(self, rows: list[BacklogRow], now: float) -> None:
        values = [(r.tenant_id, r.function, r.state, r.tasks, r.oldest) for r in rows]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q["clear_backlog"])
            if values:
                await conn.execute(Q["put_backlog"], *columns_of(values, 5), now)

    async def list_backlog(self, tenant_id: str | None) -> tuple[list[BacklogRow], float | None]:
        if tenant_id is None:
            rows = await self.pool.fetch(Q["list_all_backlog"])
        else:
            rows = await self.pool.fetch(Q["list_backlog"], tenant_id)
        taken = await self.pool.fetchval(Q["backlog_taken"])
        return [BacklogRow(*r[:5]) for r in rows], taken

    async def count_load(
        self, tenant_id: str, functions: list[str], due_by: float, cap: int
    ) -> list[BacklogRow]:
        if tenant_id == SHARED:
            rows = await self.pool.fetch(Q["count_pool_load"], functions, due_by, cap)
        else:
            rows = await self.pool.fetch(Q["count_load"], tenant_id, functions, due_by, cap)
        return [BacklogRow(*r) for r in rows]
