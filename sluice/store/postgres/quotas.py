"""Tenant quotas in PostgreSQL (a JSON TenantQuota each), and the queued count that the
hard quota caps at submit."""

from __future__ import annotations

from .database import PostgresDatabase
from .queries import Q


class PostgresQuotas(PostgresDatabase):
    async def put_quota(self, tenant_id: str, config: bytes) -> None:
        await self.pool.execute(Q["put_quota"], tenant_id, config)

    async def get_quota(self, tenant_id: str) -> bytes | None:
        found = await self.pool.fetchval(Q["get_quota"], tenant_id)
        return None if found is None else bytes(found)

    async def list_quotas(self) -> list[tuple[str, bytes]]:
        return [(r[0], bytes(r[1])) for r in await self.pool.fetch(Q["list_quotas"])]

    async def count_queued(self, tenant_id: str) -> int:
        return int(await self.pool.fetchval(Q["count_queued"], tenant_id))
