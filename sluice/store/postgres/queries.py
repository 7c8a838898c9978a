"""The PostgreSQL backend's named queries and numbered migrations, loaded once."""

from __future__ import annotations

from pathlib import Path

from ..sqlfile import load_migrations, load_queries

HERE = Path(__file__).parent
Q = load_queries(HERE / "queries.sql")
MIGRATIONS = load_migrations(HERE / "migrations")
