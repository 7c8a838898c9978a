"""A task's history in PostgreSQL: the rows of its rarer transitions (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Sequence

from ...model import HistoryEntry
from .database import Conn, PostgresDatabase, columns_of
from .queries import Q

# (tenant id, task id, kind, detail)
Entry = tuple[str, str, str, str | None]


class PostgresHistory(PostgresDatabase):
    async def list_history(self, tenant_id: str, task_id: str) -> list[HistoryEntry]:
        rows = await self._fetch(Q["list_history"], tenant_id, task_id)
        return [HistoryEntry(*r) for r in rows]


async def record_history(conn: Conn, now: float, entries: Sequence[Entry]) -> None:
    """Append history rows inside the caller's transaction, in one statement."""
    if entries:
        tenants, ids, kinds, details = columns_of(entries, 4)
        await conn.execute(Q["record_history"], tenants, ids, now, kinds, details)
