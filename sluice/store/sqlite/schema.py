"""The SQLite schema: the numbered files of migrations/, applied by the writer connection
when it opens; `PRAGMA user_version` is the schema version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..sqlfile import load_migrations

MIGRATIONS = load_migrations(Path(__file__).parent / "migrations")


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations not applied yet, each in its own transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, sql in MIGRATIONS:
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _split_statements(sql: str) -> list[str]:
    """Split a migration into statements (migrations hold no triggers or string semicolons)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
