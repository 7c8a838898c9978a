"""The SQL files: named queries match their callers, migrations build the schema, and
the hot claim query is served by its partial index."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.store.sqlfile import load_migrations, load_queries
from sluice.store.sqlite import SQLiteStore

STORE = Path(__file__).parents[2] / "sluice" / "store"
# One folder per dialect, each holding queries.sql and the module that runs them.
DIALECTS = sorted(p.parent.name for p in STORE.glob("*/queries.sql"))
REFERENCE = re.compile(r"""\bQ\[["']([a-z_][a-z0-9_]*)["']\]""")
TABLES = {
    "audit",
    "tasks",
    "attempts",
    "events",
    "tenants",
    "api_keys",
    "functions",
    "leases",
    "schedules",
    "pauses",
    "subscriptions",
    "rate_limits",
    "quotas",
}


def test_there_are_sqlite_and_postgres_dialects() -> None:
    assert DIALECTS == ["postgres", "sqlite"]


def test_both_dialects_define_the_same_query_names() -> None:
    names = {d: set(load_queries(STORE / d / "queries.sql")) for d in DIALECTS}

    assert names["postgres"] == names["sqlite"]


def test_both_dialects_number_their_migrations_without_gaps() -> None:
    for dialect in DIALECTS:
        numbers = [n for n, _sql in load_migrations(STORE / dialect / "migrations")]
        assert numbers == list(range(1, len(numbers) + 1)), dialect


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_named_query_is_used_and_every_used_query_exists(dialect: str) -> None:
    defined = set(load_queries(STORE / dialect / "queries.sql"))
    used = {
        name
        for module in sorted((STORE / dialect).glob("*.py"))
        for name in REFERENCE.findall(module.read_text())
    }

    assert defined, "no queries loaded"
    assert sorted(defined - used) == [], "defined but never used"
    assert sorted(used - defined) == [], "used but not defined"


def test_load_queries_strips_comments_and_keeps_each_body(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text(
        "-- preamble\n\n-- name: one\n-- why it exists\nSELECT 1;\n\n-- name: two\nSELECT\n  2;\n"
    )

    assert load_queries(path) == {"one": "SELECT 1;", "two": "SELECT\n  2;"}


def test_load_queries_refuses_a_name_defined_twice(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("-- name: one\nSELECT 1;\n-- name: one\nSELECT 2;\n")

    with pytest.raises(ValueError, match="'one' defined twice"):
        load_queries(path)


def test_load_migrations_returns_numbered_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "0002_more.sql").write_text("B")
    (tmp_path / "0001_init.sql").write_text("A")
    (tmp_path / "notes.sql").write_text("ignored")

    assert load_migrations(tmp_path) == [(1, "A"), (2, "B")]


@pytest.fixture
async def migrated(tmp_path: Path) -> Path:
    """A database file that a SQLite store has opened (and so migrated) and closed."""
    path = tmp_path / "sluice.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    return path


@pytest.fixture
def conn(migrated: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(migrated)
    try:
        yield connection
    finally:
        connection.close()


def test_migrations_create_the_tables(conn: sqlite3.Connection) -> None:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()

    assert {name for (name,) in rows} == TABLES


def test_migrations_record_the_latest_version_and_leave_wal_on(conn: sqlite3.Connection) -> None:
    latest = load_migrations(STORE / "sqlite" / "migrations")[-1][0]

    assert conn.execute("PRAGMA user_version").fetchone() == (latest,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_migrations_create_the_partial_ready_index(conn: sqlite3.Connection) -> None:
    indexes = {row[1]: row for row in conn.execute("PRAGMA index_list(tasks)")}
    # index_xinfo: (seqno, cid, name, desc, coll, key); key columns only.
    columns = [
        (row[2], row[3]) for row in conn.execute("PRAGMA index_xinfo(tasks_ready)") if row[5]
    ]
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'tasks_ready'").fetchone()

    assert indexes["tasks_ready"][4] == 1  # partial
    assert columns == [("tenant_id", 0), ("priority", 1), ("stag", 0), ("id", 0)]
    assert sql.endswith("WHERE state = 'ready'")


async def test_migrating_an_already_migrated_file_changes_nothing(
    migrated: Path, conn: sqlite3.Connection
) -> None:
    before = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    store = SQLiteStore(migrated)
    await store.open()
    await store.close()

    after = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()

    assert after == before


def test_claim_query_plan_uses_the_ready_index(conn: sqlite3.Connection) -> None:
    claim = load_queries(STORE / "sqlite" / "queries.sql")["claim_tasks"]
    params = {
        "tenant_id": "t",
        "worker": "w",
        "functions": '["send"]',
        "limit": 10,
        "now": 1_700_000_000.0,
        "lease_until": 1_700_000_030.0,
    }

    for parts in (None, "[0, 3, 7]"):  # every partition; some of them
        query = f"EXPLAIN QUERY PLAN {claim}"
        plan = [row[3] for row in conn.execute(query, {**params, "parts": parts})]

        assert any("USING INDEX tasks_ready (tenant_id=?)" in step for step in plan), plan
        # The index already yields fair order: no sort of the ready set.
        assert not any("TEMP B-TREE" in step for step in plan), plan
