"""The PostgreSQL schema: the numbered files of migrations/, applied at open (or by
`sluice migrate`) under an advisory lock, so nodes starting together migrate once; the
table `schema_migrations` records the versions applied."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from ..sqlfile import load_migrations

MIGRATIONS = load_migrations(Path(__file__).parent / "migrations")
MIGRATION_LOCK = 7_364_001  # pg_advisory_xact_lock key: one node migrates at a time


async def migrate(dsn: str) -> int:
    """Apply the numbered migrations not applied yet. Returns the schema version."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = await conn.fetchval("SELECT COALESCE(max(version), 0) FROM schema_migrations")
            for number, sql in MIGRATIONS:
                if number > version:
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", number
                    )
                    version = number
        return int(version)
    finally:
        await conn.close()
