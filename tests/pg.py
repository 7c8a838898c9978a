"""PostgreSQL for tests: a migrated template database, cloned into a fresh database for
each test that asks for one.

The server is the machine's (SLUICE_TEST_PG, default postgresql://postgres@127.0.0.1:5432).
Without one, PostgreSQL tests skip with the reason, except under CI=true, where they fail:
a CI run that silently skipped the PostgreSQL backend would prove nothing about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from sluice.store.postgres import migrate

SERVER = os.environ.get("SLUICE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
MIGRATIONS = Path(__file__).parents[1] / "sluice" / "store" / "postgres" / "migrations"


def dsn(database: str) -> str:
    return f"{SERVER.rstrip('/')}/{database}"


def _template_name() -> str:
    digest = hashlib.blake2b(digest_size=6)
    for file in sorted(MIGRATIONS.glob("*.sql")):
        digest.update(file.read_bytes())
    return f"sluice_template_{digest.hexdigest()}"


TEMPLATE = _template_name()
_unreachable: str | None = None


async def require_postgres() -> None:
    """Skip (or, under CI=true, fail) when no PostgreSQL answers."""
    global _unreachable
    if _unreachable is None:
        try:
            await _ensure_template()
            _unreachable = ""
        except (OSError, asyncpg.PostgresError) as exc:
            _unreachable = f"no PostgreSQL at {SERVER}: {exc}"
    if _unreachable:
        if os.environ.get("CI") == "true":
            pytest.fail(_unreachable + " (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(_unreachable)


async def _ensure_template() -> None:
    admin = await asyncpg.connect(dsn("postgres"), timeout=5)
    try:
        # One test process builds the template; the others wait on the lock, then find it.
        await admin.execute("SELECT pg_advisory_lock(7364002)")
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEMPLATE)
            if not exists:
                building = f"{TEMPLATE}_building"
                await admin.execute(f'DROP DATABASE IF EXISTS "{building}"')
                await admin.execute(f'CREATE DATABASE "{building}"')
                await migrate(dsn(building))
                await admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{TEMPLATE}"')
        finally:
            await admin.execute("SELECT pg_advisory_unlock(7364002)")
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(empty: bool = False) -> AsyncIterator[str]:
    """A new database cloned from the migrated template (or `empty`, as `createdb`
    makes one); dropped afterwards."""
    name = f"sluice_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn("postgres"))
    try:
        template = "" if empty else f' TEMPLATE "{TEMPLATE}"'
        await admin.execute(f'CREATE DATABASE "{name}"{template}')
    finally:
        await admin.close()
    try:
        yield dsn(name)
    finally:
        admin = await asyncpg.connect(dsn("postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.contextmanager
def fresh_database_sync(empty: bool = False) -> Iterator[str]:
    """`require_postgres` and `fresh_database`, for a test that drives processes."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(require_postgres())
        fresh = fresh_database(empty)
        database = loop.run_until_complete(fresh.__aenter__())
        try:
            yield database
        finally:
            loop.run_until_complete(fresh.__aexit__(None, None, None))
    finally:
        loop.close()
