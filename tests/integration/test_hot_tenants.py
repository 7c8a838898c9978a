"""Hot tenants (issue 7 point 6), on SQLite and PostgreSQL: a tenant whose backlog stays
high gets a partition of its own for its new tasks, and returns to its shared partitions
once it has drained (thresholds shortened: hot after 1 s, cool after 1 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

import sluice
from sluice.client import AsyncClient
from sluice.engine.partitions import Partitions
from sluice.policy.sharding import HOT_MIN, PARTITIONS, K, shards
from tests.harness import Running, running_server, running_worker, wait_for

app = sluice.App("hot")


@app.task
async def work(i: int) -> None:
    return None


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend, hot_for_s=1.0, cool_for_s=1.0) as running:
        yield running


def count_in(server: Running, ids: list[str], where: str) -> int:
    """How many of these tasks match `where`, read from the database directly."""
    quoted = ",".join(f"'{i}'" for i in ids)
    return server.count(f"id IN ({quoted}) AND {where}")


async def test_a_flooding_tenant_gets_its_own_partition_and_comes_back(server: Running) -> None:
    node = server.node
    partitions: Partitions = node.partitions
    mine = set(shards(server.tenant_id, PARTITIONS, K))
    async with AsyncClient(server.url, server.api_key) as client:
        batch = [{"function": "work", "args": [i]} for i in range(1000)]
        for _ in range(3 * HOT_MIN // 1000):  # a backlog past the threshold, no workers
            await client.submit_many(batch)
        await wait_for(lambda: server.tenant_id in partitions.hot.hot, timeout=30)
        ids = [h.id for h in await client.submit_many(batch[:10])]
        assert count_in(server, ids, f"part >= {PARTITIONS}") == 10  # its own partition

        async with running_worker(server, app, concurrency=32):
            await wait_for(lambda: server.count("state = 'ready'") == 0, timeout=60)
            await wait_for(lambda: server.tenant_id not in partitions.hot.hot, timeout=30)
        ids = [h.id for h in await client.submit_many(batch[:10])]
        shared = ",".join(str(p) for p in sorted(mine))
        assert count_in(server, ids, f"part IN ({shared})") == 10  # back on its shared ones
