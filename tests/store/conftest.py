"""The backend matrix of the store contract suite.

Every test that takes the `store` fixture runs once per backend in `BACKENDS`. A backend
is an async context manager that yields an open, empty, migrated store; PostgreSQL
(issue 5) joins by adding its factory here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from sluice.store import Store
from sluice.store.sqlite import SQLiteStore


@contextlib.asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    # A real file, so WAL and the separate reader connections behave as in production.
    store = SQLiteStore(tmp_path / "sluice.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Store]]] = {
    "sqlite": sqlite_store,
}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with BACKENDS[request.param](tmp_path) as opened:
        yield opened
