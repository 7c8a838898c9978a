"""The PostgreSQL backend's database (DESIGN §5 "Storage", "Multi-node"): asyncpg pools
and the group insert of plain submits (writer.py). Each noun's part of `PostgresStore`
builds on `PostgresDatabase`.

Two pools. Writes a user was told about (submits, finishes, cancels) commit durably.
Claims, lease renewals and promotions go through a second, small pool whose sessions
run with `synchronous_commit = off`: they do not wait for the WAL flush, and losing the
last of them in a database crash only puts tasks back to ready or scheduled, which
at-least-once delivery already allows (the fencing on finish rejects a result for a
claim that was lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from .schema import migrate
from .writer import GroupInsert

Conn = Any  # asyncpg.Connection or a pool's proxy; asyncpg ships no type hints
POOL_SIZE = 10
FAST_POOL_SIZE = 3
# The claims' connections (also renewals and promotions): commits that do not wait for
# the disk, and no sorts. Every claim has an index in its order; with statistics from
# when the table was small, the cached generic plan of a claim sorted every ready row
# instead (50-110 ms a claim with 200,000 ready: a 500/s limit released at 260/s).
# enable_sort=off prices such plans out whatever the statistics say.
FAST_SETTINGS = {"synchronous_commit": "off", "enable_sort": "off"}
CLOSE_TIMEOUT_S = 5.0
# Every session's. A transaction left open would hold back vacuum and bloat the ready index.
SESSION_SETTINGS = {"idle_in_transaction_session_timeout": "60000"}


class PostgresDatabase:
    backend = "postgres"

    def __init__(self, dsn: str, *, pool_size: int = POOL_SIZE) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: Any = None
        self._fast_pool: Any = None
        self._inserts = GroupInsert(self)

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool

    @property
    def fast(self) -> Any:
        """The pool whose commits do not wait for the disk (see the module's docstring)."""
        if self._fast_pool is None:
            raise RuntimeError("the store is not open")
        return self._fast_pool

    async def open(self) -> None:
        await migrate(self.dsn)
        self._inserts = GroupInsert(self)
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=2,
            max_size=self.pool_size,
            server_settings=SESSION_SETTINGS,
            reset=_keep_session,
        )
        self._fast_pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=FAST_POOL_SIZE,
            server_settings={**SESSION_SETTINGS, **FAST_SETTINGS},
            reset=_keep_session,
        )

    async def connect(self, **settings: str) -> Conn:
        """A connection of its own, outside the pools, with their session settings."""
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return await asyncpg.connect(self.dsn, server_settings={**SESSION_SETTINGS, **settings})

    async def close(self) -> None:
        try:
            await self._inserts.close()
        finally:
            await self._close_pools()

    async def _close_pools(self) -> None:
        for pool in (self._pool, self._fast_pool):
            if pool is None:
                continue
            try:
                # Waits for borrowed connections to come back; a stuck one must not keep
                # a stopping node alive.
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                pool.terminate()
        self._pool = self._fast_pool = None

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        return list(await self.pool.fetch(query, *args))


async def _keep_session(_conn: Conn) -> None:
    """Pool connections go back as they are. asyncpg's default reset (RESET ALL,
    UNLISTEN *, CLOSE ALL, unlock advisory locks) is one more round trip per use, and
    this store never changes session state: no SET, no LISTEN (the bus has its own
    connections), advisory locks only per transaction. An open transaction is still
    rolled back by asyncpg before this runs."""


def columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one array per column, for a statement that opens them with unnest()."""
    return [[row[i] for row in rows] for i in range(width)]
