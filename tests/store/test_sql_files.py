"""The SQL files: one file of named blocks per noun and dialect, beside the module that
runs them; both dialects have the same files and the same names in each; every name is
used; migrations build the schema, and the hot claim query is served by its partial index."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.store.sqlfile import load_migrations, load_queries, load_query_files
from sluice.store.sqlite import SQLiteStore
from sluice.store.sqlite.queries import Q as SQLITE_QUERIES

STORE = Path(__file__).parents[2] / "sluice" / "store"
# One folder per dialect: its modules, a .sql file per noun module, its migrations.
DIALECTS = sorted(p.parent.name for p in STORE.glob("*/queries.py"))
REFERENCE = re.compile(r"""\bQ\[["']([a-z_][a-z0-9_]*)["']\]""")
# A backend's modules that are not a noun of the protocol, so have no .sql file: the
# composed store, its database (connections, writer, schema) and the query loader.
NOT_NOUNS = {"__init__", "database", "writer", "schema", "queries", "bus", "bulk"}
# Blocks that one dialect needs and the other does not, as (dialect, file, name); the
# block's comment in its file says why. Nothing else may differ.
ONLY_IN_ONE_DIALECT = {
    ("postgres", "limits", "lock_limit"),
    # A lone row without insert_task's arrays (SQLite's insert_task is one row already).
    ("postgres", "tasks", "insert_one"),
    ("postgres", "attempts", "insert_one_leased"),
    # Ends the server's side of inserts cut off at close (SQLite's are in-process).
    ("postgres", "tasks", "end_backends"),
    ("sqlite", "tasks", "insert_payload"),
    ("sqlite", "tasks", "delete_payload"),
}
TABLES = {
    "task_logs",
    "audit",
    "rollup",
    "backlog",
    "tasks",
    "payloads",  # SQLite's large payloads (0021_payloads.sql); PostgreSQL's TOAST does it
    "attempts",
    "events",  # a task's history (history.sql says why the table keeps this name)
    "tenants",
    "api_keys",
    "functions",
    "leases",
    "node_secrets",  # secrets every node shares (the console's signing key)
    "schedules",
    "pauses",
    "subscriptions",
    "rate_limits",
    "quotas",
    "notifications",
    "webhook_endpoints",
    "webhook_secrets",
}


def query_files(dialect: str) -> dict[str, set[str]]:
    """Each .sql file's stem, with the names of its blocks."""
    return {f.stem: set(load_queries(f)) for f in sorted((STORE / dialect).glob("*.sql"))}


def test_there_are_sqlite_and_postgres_dialects() -> None:
    assert DIALECTS == ["postgres", "sqlite"]


def test_both_dialects_have_the_same_query_files() -> None:
    files = {d: sorted(query_files(d)) for d in DIALECTS}

    assert files["postgres"] == files["sqlite"]
    assert "tasks" in files["sqlite"]


def test_both_dialects_define_the_same_query_names_in_each_file() -> None:
    names = {d: query_files(d) for d in DIALECTS}
    only = {
        (dialect, stem, name)
        for dialect in DIALECTS
        for other in DIALECTS
        if other != dialect
        for stem, defined in names[dialect].items()
        for name in defined - names[other].get(stem, set())
    }

    assert only == ONLY_IN_ONE_DIALECT


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_noun_module_has_its_query_file_and_each_query_file_its_module(
    dialect: str,
) -> None:
    modules = {p.stem for p in (STORE / dialect).glob("*.py")} - NOT_NOUNS

    assert modules == set(query_files(dialect))


def test_the_dialect_only_blocks_are_explained_in_their_files() -> None:
    for dialect, stem, name in ONLY_IN_ONE_DIALECT:
        text = (STORE / dialect / f"{stem}.sql").read_text()
        comment = text.split(f"-- name: {name}\n", 1)[1].splitlines()[0]

        assert comment.startswith("-- ") and "only" in comment, (dialect, name, comment)


def test_both_dialects_number_their_migrations_in_order() -> None:
    # Gaps are allowed: branches reserve numbers and merge in any order.
    for dialect in DIALECTS:
        numbers = [n for n, _sql in load_migrations(STORE / dialect / "migrations")]
        assert numbers == sorted(set(numbers)) and numbers[0] == 1, dialect


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_named_query_is_used_and_every_used_query_exists(dialect: str) -> None:
    defined = set(load_query_files(STORE / dialect))
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


def test_load_query_files_merges_the_files_of_a_folder(tmp_path: Path) -> None:
    (tmp_path / "tasks.sql").write_text("-- name: get_task\nSELECT 1;\n")
    (tmp_path / "attempts.sql").write_text("-- name: claim_tasks\nSELECT 2;\n")
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_init.sql").write_text("CREATE TABLE t (id int);")

    assert load_query_files(tmp_path) == {"claim_tasks": "SELECT 2;", "get_task": "SELECT 1;"}


def test_load_query_files_refuses_a_name_defined_in_two_files(tmp_path: Path) -> None:
    (tmp_path / "tasks.sql").write_text("-- name: get_task\nSELECT 1;\n")
    (tmp_path / "attempts.sql").write_text("-- name: get_task\nSELECT 2;\n")

    with pytest.raises(ValueError, match="'get_task' is defined in another file too"):
        load_query_files(tmp_path)


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
    claim = SQLITE_QUERIES["claim_tasks"]
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
