"""Named leases in PostgreSQL: which node owns what (partitions, the timers), set and
judged on the database's clock (store/base.py says why)."""

from __future__ import annotations

from .database import PostgresDatabase
from .queries import Q


class PostgresLeases(PostgresDatabase):
    async def list_leases(self, prefix: str) -> list[tuple[str, str, float]]:
        return [(r[0], r[1], r[2]) for r in await self._fetch(Q["list_leases"], prefix)]

    async def acquire_leases(self, names: list[str], holder: str, ttl_s: float) -> list[str]:
        unique = sorted(set(names))
        rows = await self.pool.fetch(Q["acquire_leases"], unique, holder, ttl_s)
        return [r[0] for r in rows]

    async def release_lease(self, name: str, holder: str) -> None:
        await self.pool.execute(Q["release_lease"], name, holder)

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        got = await self.pool.fetchval(Q["acquire_lease"], name, holder, ttl_s)
        return bool(got == holder)

    async def keep_secret(self, name: str, candidate: bytes, now: float) -> bytes:
        await self.pool.execute(Q["keep_secret"], name, candidate, now)
        return bytes(await self.pool.fetchval(Q["get_secret"], name))
