"""The backend matrix of the store contract suite.

Every test that takes the `store` fixture runs once per backend in `BACKENDS`. A backend
is an async context manager that yields an open, empty, migrated store: SQLite in a
temporary file, PostgreSQL in a database cloned from a migrated template (tests/pg.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from sluice.store import Store
from sluice.store.postgres import PostgresStore
from sluice.store.sqlite import SQLiteStore
from tests import pg


@contextlib.asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    # A real file, so WAL and the separate reader connections behave as in production.
    store = SQLiteStore(tmp_path / "sluice.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def postgres_store(tmp_path: Path) -> AsyncIterator[Store]:
    await pg.require_postgres()
    async with pg.fresh_database() as dsn:
        store = PostgresStore(dsn, pool_size=4)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Store]]] = {
    "sqlite": sqlite_store,
    "postgres": postgres_store,
}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with BACKENDS[request.param](tmp_path) as opened:
        yield opened
