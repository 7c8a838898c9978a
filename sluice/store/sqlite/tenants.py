"""Tenants in SQLite, and their API keys (stored hashed; a key's id is the head of its
hash)."""

from __future__ import annotations

import sqlite3
import uuid

from ...contract import ApiKey, Tenant
from .database import SQLiteDatabase
from .queries import Q


class SQLiteTenants(SQLiteDatabase):
    async def create_tenant(self, name: str, now: float) -> Tenant:
        tenant = Tenant(id=uuid.uuid4().hex, name=name, created_at=now)
        await self._writer.submit(
            lambda c: c.execute(Q["create_tenant"], {"id": tenant.id, "name": name, "now": now})
        )
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        rows = await self._read(Q["get_tenant"], {"id": tenant_id})
        return Tenant(*rows[0]) if rows else None

    async def get_tenant_by_name(self, name: str) -> Tenant | None:
        rows = await self._read(Q["get_tenant_by_name"], {"name": name})
        return Tenant(*rows[0]) if rows else None

    async def list_tenants(self) -> list[Tenant]:
        return [Tenant(*r) for r in await self._read(Q["list_tenants"])]

    async def create_api_key(self, tenant_id: str, key_hash: str, prefix: str, now: float) -> None:
        params = {"key_hash": key_hash, "tenant_id": tenant_id, "prefix": prefix, "now": now}
        await self._writer.submit(lambda c: c.execute(Q["create_api_key"], params))

    async def find_api_key(self, key_hash: str) -> str | None:
        rows = await self._read(Q["find_api_key"], {"key_hash": key_hash})
        return str(rows[0][0]) if rows else None

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        rows = await self._read(Q["list_api_keys"], {"tenant_id": tenant_id})
        return [ApiKey(*r) for r in rows]

    async def revoke_api_key(self, tenant_id: str, key_id: str, now: float) -> str | None:
        params = {"tenant_id": tenant_id, "key_id": key_id, "now": now}

        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(Q["revoke_api_key"], params).fetchone()
            return None if row is None else str(row[0])

        return await self._writer.submit(op, small=True)
