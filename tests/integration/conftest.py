"""Backends for the integration tests: files whose `server` fixture takes `backend` run
every test on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
