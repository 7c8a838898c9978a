"""A task's history in SQLite: the rows of its rarer transitions (DESIGN §3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...model import HistoryEntry
from .database import SQLiteDatabase
from .queries import Q

# (tenant id, task id, kind, detail)
Entry = tuple[str, str, str, str | None]


class SQLiteHistory(SQLiteDatabase):
    async def list_history(self, tenant_id: str, task_id: str) -> list[HistoryEntry]:
        rows = await self._read(Q["list_history"], {"tenant_id": tenant_id, "task_id": task_id})
        return [HistoryEntry(*r) for r in rows]


def record_history(conn: sqlite3.Connection, now: float, entries: Sequence[Entry]) -> None:
    """Append history rows inside the caller's write (a cancel, a reap, a hand-back...)."""
    # executemany: the rows go through SQLite in C, not one Python call each.
    conn.executemany(
        Q["record_history"],
        [
            {"tenant_id": tenant_id, "task_id": task_id, "now": now, "kind": kind,
             "detail": detail}
            for tenant_id, task_id, kind, detail in entries
        ],
    )  # fmt: skip
