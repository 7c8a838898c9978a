"""The audit log in PostgreSQL: administrative and bulk actions, with actor and selector."""

from __future__ import annotations

from typing import Any

from ...contract import AuditEntry
from .database import PostgresDatabase, columns_of
from .queries import Q


def _entry(row: Any) -> AuditEntry:
    entry_id, tenant_id, actor, action, selector, count, at, detail = row
    return AuditEntry(
        id=entry_id, tenant_id=tenant_id, actor=actor, action=action, selector=selector,
        count=count, at=at, detail=detail,
    )  # fmt: skip


class PostgresAudit(PostgresDatabase):
    async def record_audit(self, entries: list[AuditEntry]) -> None:
        rows = [
            (e.id, e.tenant_id, e.actor, e.action, e.selector, e.count, e.at, e.detail)
            for e in entries
        ]
        if rows:
            await self.pool.execute(Q["record_audit"], *columns_of(rows, 8))

    async def list_audit(
        self, tenant_id: str | None, before: str, limit: int, action: str | None = None
    ) -> list[AuditEntry]:
        before = before or "~"  # "~" sorts after every id
        if tenant_id is None:
            rows = await self.pool.fetch(Q["list_all_audit"], before, action, limit)
        else:
            rows = await self.pool.fetch(Q["list_audit"], tenant_id, before, action, limit)
        return [_entry(r) for r in rows]

    async def purge_audit(self, before: float, limit: int) -> int:
        return int(await self.pool.fetchval(Q["purge_audit"], before, limit))
