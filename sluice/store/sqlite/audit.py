"""The audit log in SQLite: administrative and bulk actions, with actor and selector."""

from __future__ import annotations

import sqlite3
from typing import Any

from ...contract import AuditEntry
from .database import SQLiteDatabase
from .queries import Q


def _entry(row: Any) -> AuditEntry:
    entry_id, tenant_id, actor, action, selector, count, at, detail = row
    return AuditEntry(
        id=entry_id, tenant_id=tenant_id, actor=actor, action=action, selector=selector,
        count=count, at=at, detail=detail,
    )  # fmt: skip


class SQLiteAudit(SQLiteDatabase):
    async def record_audit(self, entries: list[AuditEntry]) -> None:
        params = [
            {"id": e.id, "tenant_id": e.tenant_id, "actor": e.actor, "action": e.action,
             "selector": e.selector, "count": e.count, "at": e.at, "detail": e.detail}
            for e in entries
        ]  # fmt: skip
        if params:  # an action or two at a time: inline when the writer is idle
            await self._writer.submit(
                lambda c: c.executemany(Q["record_audit"], params), small=True
            )

    async def list_audit(
        self, tenant_id: str | None, before: str, limit: int, action: str | None = None
    ) -> list[AuditEntry]:
        before = before or "~"  # "~" sorts after every id
        params = {"tenant_id": tenant_id, "before": before, "action": action, "limit": limit}
        query = Q["list_all_audit"] if tenant_id is None else Q["list_audit"]
        return [_entry(r) for r in await self._read(query, params)]

    async def purge_audit(self, before: float, limit: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(Q["purge_audit"], {"before": before, "limit": limit}).rowcount

        return await self._writer.submit(op)
