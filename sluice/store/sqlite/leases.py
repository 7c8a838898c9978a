"""Named leases in SQLite: which node owns what (partitions, the timers), set and judged
on the database's clock (store/base.py says why)."""

from __future__ import annotations

import sqlite3

from .database import SQLiteDatabase
from .queries import Q


class SQLiteLeases(SQLiteDatabase):
    async def list_leases(self, prefix: str) -> list[tuple[str, str, float]]:
        rows = await self._read(Q["list_leases"], {"prefix": prefix})
        return [(r[0], r[1], float(r[2])) for r in rows]

    async def acquire_leases(self, names: list[str], holder: str, ttl_s: float) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            granted = []
            for name in sorted(names):
                params = {"name": name, "holder": holder, "ttl_s": ttl_s}
                row = conn.execute(Q["acquire_leases"], params).fetchone()
                if row is not None and row[0] == holder:
                    granted.append(name)
            return granted

        return await self._writer.submit(op, small=True)

    async def release_lease(self, name: str, holder: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(Q["release_lease"], {"name": name, "holder": holder})

        await self._writer.submit(op, small=True)

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        params = {"name": name, "holder": holder, "ttl_s": ttl_s}

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(Q["acquire_lease"], params).fetchone()
            return row is not None and row[0] == holder

        return await self._writer.submit(op, small=True)

    async def keep_secret(self, name: str, candidate: bytes, now: float) -> bytes:
        def op(conn: sqlite3.Connection) -> bytes:
            conn.execute(Q["keep_secret"], {"name": name, "value": candidate, "now": now})
            return bytes(conn.execute(Q["get_secret"], {"name": name}).fetchone()[0])

        return await self._writer.submit(op, small=True)
