"""The PostgreSQL plans of the hot statements do not depend on when statistics were
taken (docs/operations.md). The worst moment, measured: an ANALYZE while 200,000 tasks
are ready and none run makes the planner think the running set empty. Then the
statements that name their rows by id (finish, renew, release) must still look them up
by key, not join against every running row; claims must still read the ready index in
order (no sort); and the statements that want every running row must use its index."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from sluice.store.postgres.queries import Q
from tests import pg

N = 100  # a frame of finishes, a claim batch
IDS = [f"{i:012d}" for i in range(1, N + 1)]


@pytest.fixture
async def analyzed_under_load() -> AsyncIterator[asyncpg.Connection]:
    await pg.require_postgres()
    async with pg.fresh_database() as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("ALTER TABLE tasks SET (autovacuum_enabled = false)")
            await conn.execute(
                "INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, "
                "max_attempts, run_at, created_at, part) "
                "SELECT lpad(g::text, 12, '0'), 't', 'f', '\\x7b7d', 'ready', 5, g, 3, g, g, "
                "g % 32 FROM generate_series(1, 200000) AS g"
            )
            await conn.execute("ANALYZE tasks")  # 200,000 ready, none running
            await conn.execute(
                "UPDATE tasks SET state = 'running', lease_owner = 'w', attempt = 1, "
                "lease_until = 40 WHERE id <= lpad('5000', 12, '0')"
            )
            yield conn
        finally:
            await conn.close()


async def plan(conn: asyncpg.Connection, name: str, *args: object) -> str:
    return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + Q[name], *args))


async def test_statements_by_id_look_their_rows_up_by_key(
    analyzed_under_load: asyncpg.Connection,
) -> None:
    conn = analyzed_under_load
    finish = [IDS, ["t"] * N, [1] * N, ["w"] * N, ["succeeded"] * N, [1.0] * N,
              [b"null"] * N, [None] * N, [None] * N, [None] * N, [0] * N]  # fmt: skip
    plans = {
        "finish_task": await plan(conn, "finish_task", *finish),
        "extend_leases": await plan(conn, "extend_leases", ["t"] * N, ["w"] * N, IDS, 50.0),
        "release_task": await plan(conn, "release_task", "t", IDS, [1] * N, [10.0] * N, "w", 50.0),
        "get_claimed": await plan(conn, "get_claimed", "t", IDS, "w"),
    }
    for name, text in plans.items():
        assert "tasks_leased" not in text, (name, text)
        assert "Hash Join" not in text and "Seq Scan on tasks" not in text, (name, text)
        assert "tasks_pkey" in text or "tasks_tenant" in text, (name, text)


async def test_claims_read_the_ready_index_in_order(
    analyzed_under_load: asyncpg.Connection,
) -> None:
    conn = analyzed_under_load
    head = ["t", ["f"], 10.0, N, "w", 40.0]
    shared = ["*", ["f"], 10.0, N, "pool:w", 40.0]
    plans = {
        "claim_tasks": (await plan(conn, "claim_tasks", *head, None), "tasks_ready"),
        "claim_level": (await plan(conn, "claim_level", *head, 5, [1, 2]), "tasks_ready"),
        "claim_shared": (await plan(conn, "claim_shared", *shared, [], None), "tasks_ready_shared"),
        "claim_shared_level": (
            await plan(conn, "claim_shared_level", *shared, 5, [], [3]),
            "tasks_ready_shared",
        ),
    }
    for name, (text, index) in plans.items():
        assert f"Index Scan using {index} on tasks" in text, (name, text)
        assert "Sort" not in text, (name, text)


async def test_statements_over_every_running_row_use_its_index(
    analyzed_under_load: asyncpg.Connection,
) -> None:
    conn = analyzed_under_load
    plans = {
        "expired_leases": await plan(conn, "expired_leases", 50.0, N),
        "count_running": await plan(conn, "count_running", "t", None, []),
        "leased_to": await plan(conn, "leased_to", "t", "w"),
        "fair_clock": await plan(conn, "fair_clock"),
    }
    for name, text in plans.items():
        assert "tasks_leased" in text, (name, text)
