"""Pause rules in PostgreSQL, and the tasks they hold (DESIGN §3: a pause is a rule, not
a state; held tasks wait as `paused`)."""

from __future__ import annotations

from ...model import PauseRow
from .database import PostgresDatabase
from .queries import Q


class PostgresPauses(PostgresDatabase):
    async def create_pause(
        self, tenant_id: str, pause_id: str, selector: bytes, now: float
    ) -> None:
        await self.pool.execute(Q["insert_pause"], tenant_id, pause_id, selector, now)

    async def list_pauses(self, tenant_id: str | None) -> list[PauseRow]:
        rows = await self.pool.fetch(Q["list_pauses"], tenant_id)
        return [PauseRow(t, i, bytes(s), at) for t, i, s, at in rows]

    async def delete_pause(self, tenant_id: str, pause_id: str) -> bytes | None:
        selector = await self.pool.fetchval(Q["delete_pause"], tenant_id, pause_id)
        return None if selector is None else bytes(selector)

    async def hold_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        return [r[0] for r in await self.pool.fetch(Q["hold_tasks"], tenant_id, task_ids)]

    async def unhold_tasks(
        self, tenant_id: str, task_ids: list[str], now: float
    ) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(Q["unhold_tasks"], tenant_id, task_ids, now)
        return [(r[0], r[1]) for r in rows]
