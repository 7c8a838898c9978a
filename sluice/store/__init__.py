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
    Reaped,
    Store,
)

__all__ = [
    "ACCEPTED",
    "DUPLICATE",
    "STALE",
    "Cancelled",
    "ClaimRequest",
    "DeadSelector",
    "DeadTask",
    "LeaseRenewal",
    "Reaped",
    "Store",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    from .sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path, synchronous=settings.synchronous)
