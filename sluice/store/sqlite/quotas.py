"""Tenant quotas in SQLite (a JSON TenantQuota each), and the queued count that the
hard quota caps at submit."""

from __future__ import annotations

from .database import SQLiteDatabase
from .queries import Q


class SQLiteQuotas(SQLiteDatabase):
    async def put_quota(self, tenant_id: str, config: bytes) -> None:
        params = {"tenant_id": tenant_id, "config": config.decode()}
        await self._writer.submit(lambda c: c.execute(Q["put_quota"], params), small=True)

    async def get_quota(self, tenant_id: str) -> bytes | None:
        rows = await self._read(Q["get_quota"], {"tenant_id": tenant_id})
        return str(rows[0][0]).encode() if rows else None

    async def list_quotas(self) -> list[tuple[str, bytes]]:
        return [(r[0], str(r[1]).encode()) for r in await self._read(Q["list_quotas"])]

    async def count_queued(self, tenant_id: str) -> int:
        rows = await self._read(Q["count_queued"], {"tenant_id": tenant_id})
        return int(rows[0][0])
