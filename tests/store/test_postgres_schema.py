"""The PostgreSQL schema: migrations build the same tables and columns as SQLite's,
migrating twice changes nothing, and the hot claim is served by the partial ready index
without a sort, whatever the number of finished rows."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sluice.store.postgres import migrate
from sluice.store.postgres.queries import Q
from sluice.store.postgres.schema import MIGRATIONS
from sluice.store.sqlite import SQLiteStore
from tests import pg


@pytest.fixture
async def database() -> AsyncIterator[str]:
    await pg.require_postgres()
    async with pg.fresh_database() as dsn:
        yield dsn


async def _columns(dsn: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'schema_migrations'"
        )
    finally:
        await conn.close()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


async def test_postgres_and_sqlite_migrations_make_the_same_tables_and_columns(
    database: str, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        # SQLite only: large payloads beside their tasks (PostgreSQL's TOAST does that).
        tables.remove("payloads")
        lite = {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    finally:
        conn.close()

    assert await _columns(database) == lite


async def test_migrating_again_changes_nothing_and_records_the_version(database: str) -> None:
    before = await _columns(database)

    version = await migrate(database)

    assert version == MIGRATIONS[-1][0]
    assert await _columns(database) == before


async def test_claim_plan_reads_the_ready_index_in_order_with_many_finished_rows(
    database: str,
) -> None:
    conn = await asyncpg.connect(database)
    try:
        # A hundred thousand ended tasks and a thousand ready ones (bench: a million).
        await conn.execute(
            "INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, "
            "max_attempts, run_at, created_at, finished_at) "
            "SELECT lpad(g::text, 12, '0'), 't', 'f', '\\x7b7d', "
            "CASE WHEN g <= 1000 THEN 'ready' ELSE 'succeeded' END, 5, g, 3, g, g, g "
            "FROM generate_series(1, 100000) AS g"
        )
        await conn.execute("ANALYZE tasks")
        plans = [
            "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN " + Q["claim_tasks"], "t", ["f"], 10.0, 100, "w", 40.0, parts
                )
            )
            for parts in (None, [0, 3, 7])  # every partition; a node's share of them
        ]
    finally:
        await conn.close()

    for plan in plans:
        assert "Index Scan using tasks_ready" in plan, plan
        assert "Sort" not in plan, plan
