"""Tenants in PostgreSQL, and their API keys (stored hashed; a key's id is the head of
its hash)."""

from __future__ import annotations

import uuid

from ...contract import ApiKey, Tenant
from .database import PostgresDatabase
from .queries import Q


class PostgresTenants(PostgresDatabase):
    async def create_tenant(self, name: str, now: float) -> Tenant:
        tenant = Tenant(id=uuid.uuid4().hex, name=name, created_at=now)
        await self.pool.execute(Q["create_tenant"], tenant.id, name, now)
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        rows = await self._fetch(Q["get_tenant"], tenant_id)
        return Tenant(*rows[0]) if rows else None

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        rows = await self._fetch(Q["get_tenant_by_name"], name)
        return Tenant(*rows[0]) if rows else None

    async def list_tenants(self) -> list[Tenant]:
        return [Tenant(*r) for r in await self._fetch(Q["list_tenants"])]

    async def create_api_key(self, tenant_id: str, key_hash: str, prefix: str, now: float) -> None:
        await self.pool.execute(Q["create_api_key"], key_hash, tenant_id, prefix, now)

    async def find_api_key(self, key_hash: str) -> str | None:
        rows = await self._fetch(Q["find_api_key"], key_hash)
        return str(rows[0][0]) if rows else None

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        return [ApiKey(*r) for r in await self._fetch(Q["list_api_keys"], tenant_id)]

    async def revoke_api_key(self, tenant_id: str, key_id: str, now: float) -> str | None:
        rows = await self._fetch(Q["revoke_api_key"], tenant_id, key_id, now)
        return None if not rows else str(rows[0][0])
