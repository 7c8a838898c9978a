"""Storage: one protocol (base.py), two backends with the same modules, one per noun
(sqlite/, postgres/). No SQL above this package, and nothing above it names a backend:
what differs between them is asked of the store (`Store.backend`, `Bus.local`,
`migrate`)."""

from __future__ import annotations

from ..config import Settings
from .base import (
    ACCEPTED,
    DUPLICATE,
    STALE,
    BacklogRow,
    Cancelled,
    ClaimRequest,
    LeaseRenewal,
    LimitedClaim,
    LogQuery,
    ProgressNote,
    Promoted,
    Reaped,
    RollupRow,
    Started,
    Store,
)
from .bus import Bus, LocalBus
from .limits import Limit

__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "STALE",
    "BacklogRow",
    "Cancelled",
    "ClaimRequest",
    "LeaseRenewal",
    "Limit",
    "LimitedClaim",
    "LogQuery",
    "ProgressNote",
    "Promoted",
    "Reaped",
    "RollupRow",
    "Started",
    "Store",
    "database_errors",
    "migrate",
    "open_bus",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    if settings.is_postgres:
        from .postgres import PostgresStore

        return PostgresStore(settings.database, pool_size=settings.pg_pool_size)
    from .sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path, synchronous=settings.synchronous)


def database_errors(settings: Settings) -> tuple[type[Exception], ...]:
    """What opening or migrating the database raises when it cannot be used (not
    reached, refused, missing), as opposed to a bug: the CLI says it in one line."""
    if settings.is_postgres:
        import asyncpg

        return (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
    import sqlite3

    return (OSError, sqlite3.Error)


def open_bus(settings: Settings, node_id: str) -> Bus:
    if settings.is_postgres:
        from .postgres.bus import PgBus

        return PgBus(settings.database, node_id)
    return LocalBus()


async def migrate(settings: Settings) -> int:
    """Bring the database's schema up to date, and nothing else; returns its version."""
    if settings.is_postgres:
        from .postgres.schema import migrate as migrate_postgres

        return await migrate_postgres(settings.database)
    from .sqlite import SQLiteStore

    store = SQLiteStore(settings.sqlite_path, synchronous=settings.synchronous)
    await store.open()  # opening migrates
    await store.close()
    return store.schema_version()
