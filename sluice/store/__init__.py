"""Storage: one protocol, one module per backend. No SQL above this package."""

from __future__ import annotations

from ..config import Settings
from .base import (
    ACCEPTED,
    DUPLICATE,
    STALE,
    Cancelled,
    ClaimRequest,
    DeadSelector,
    DeadTask,
    LeaseRenewal,
    LimitedClaim,
    Promoted,
    Reaped,
    Store,
)
from .bus import Bus, LocalBus
from .limits import Limit

__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "STALE",
    "Cancelled",
    "ClaimRequest",
    "DeadSelector",
    "DeadTask",
    "LeaseRenewal",
    "Limit",
    "LimitedClaim",
    "Promoted",
    "Reaped",
    "Store",
    "open_bus",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    if settings.is_postgres:
        from .postgres import PostgresStore

        return PostgresStore(settings.database, pool_size=settings.pg_pool_size)
    from .sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path, synchronous=settings.synchronous)


def open_bus(settings: Settings, node_id: str) -> Bus:
    if settings.is_postgres:
        from .postgres.bus import PgBus

        return PgBus(settings.database, node_id)
    return LocalBus()
