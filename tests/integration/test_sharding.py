"""Shuffle sharding end to end (issue 7 point 6), on SQLite and PostgreSQL: one partition's
dispatching is stalled (its lease is held by a node that never dispatches, as a hung node
would), and only the tenants mapped to it are affected, in the proportion the math
predicts (k/P); their new tasks go to their other partition, and when the stalled node's
lease runs out the partition is taken over and drained."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import sqlite3
import uuid
from pathlib import Path

import psycopg
import pytest

import sluice
from sluice.client import AsyncClient
from sluice.config import Settings
from sluice.engine.partitions import PART
from sluice.model import SHARED
from sluice.policy.sharding import PARTITIONS, K, shards
from sluice.store import open_store
from sluice.store.postgres import tenants as pg_tenants
from sluice.store.sqlite import tenants as lite_tenants
from tests.harness import Running, _running_server, database_for, running_worker, wait_for

POOL_KEY = "pool-secret-for-tests"
TENANTS = 160
EACH = 12
STALLED = 7
app = sluice.App("sharded-pool")
# Tenant ids from a fixed seed: with random ids, how many tenants land on the stalled
# partition is binomial and strays beyond 3 sd about once in 400 runs. With this seed it
# is 10 of 160, the expected k/P (also when a harness makes up to five tenants first).
TENANT_ID_SEED = 35


class SeededIds:
    """Stands in for the `uuid` module in the stores' tenants modules."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)


@pytest.fixture(autouse=True)
def seeded_tenant_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = SeededIds(TENANT_ID_SEED)
    for module in (lite_tenants, pg_tenants):
        monkeypatch.setattr(module, "uuid", ids)


@app.task
async def work(tenant: str, i: int) -> None:
    return None


async def hold_partition(database: str, partition: int, ttl_s: float) -> None:
    """A node named "ghost" holds a partition's lease and never dispatches it."""
    store = open_store(Settings.from_env({}, database=database))
    await store.open()  # migrates a new database
    try:
        assert await store.acquire_lease(f"{PART}{partition}", "ghost", ttl_s)
    finally:
        await store.close()


async def submit(server: Running, name: str, n: int, first: int = 0) -> AsyncClient:
    node = server.node
    tenant = await node.tenants.ensure(name)
    client = AsyncClient(server.url, await node.tenants.create_key(tenant.id))
    await client.submit_many([{"function": "work", "args": [name, first + i]} for i in range(n)])
    return client


def unfinished_tenants(server: Running) -> dict[str, int]:
    """Tasks not succeeded, per tenant name, read from the database directly."""
    query = (
        "SELECT t.name, count(*) FROM tasks JOIN tenants t ON t.id = tasks.tenant_id "
        "WHERE state <> 'succeeded' GROUP BY t.name"
    )
    if server.database.startswith("postgresql://"):
        with psycopg.connect(server.database) as conn:
            return {name: n for name, n in conn.execute(query.encode()).fetchall()}
    path = server.database.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {name: n for name, n in conn.execute(query).fetchall()}


async def test_a_stalled_partition_hurts_only_the_tenants_mapped_to_it(
    tmp_path: Path, backend: str
) -> None:
    async with database_for(backend, tmp_path) as database:
        await hold_partition(database, STALLED, ttl_s=3600)
        async with _running_server(database, app, pool_key=POOL_KEY) as server:
            node = server.node
            await node.functions.register(SHARED, [t.config for t in app.tasks.values()])
            assert STALLED not in node.partitions.owned
            assert node.partitions.owners[STALLED] == "ghost"
            names = [f"tenant-{i:03}" for i in range(TENANTS)]
            clients = [await submit(server, name, EACH) for name in names]
            try:
                in_stalled = server.count(f"part = {STALLED}")
                async with running_worker(server, app, concurrency=16, api_key=POOL_KEY):
                    # Everything outside the stalled partition runs.
                    await wait_for(
                        lambda: (
                            server.count(f"state = 'succeeded' AND part <> {STALLED}")
                            == TENANTS * EACH - in_stalled
                        ),
                        timeout=60,
                    )
                    stuck = unfinished_tenants(server)
                    # Partitions go by tenant id (names may change, ids never do).
                    ids = {n: await node.store.get_tenant_by_name(n) for n in names}
                    mapped = {
                        n for n, t in ids.items() if t and STALLED in shards(t.id, PARTITIONS, K)
                    }
                    # Only tenants mapped to the stalled partition wait, and only for their
                    # tasks placed there; placement kept the partitions even, so that is
                    # about 1/P of all tasks.
                    print(f"{len(mapped)} tenants mapped to partition {STALLED}, "
                          f"{len(stuck)} waiting for {sorted(stuck.values())} tasks")  # fmt: skip
                    assert stuck and set(stuck) <= mapped
                    assert server.count(f"state = 'ready' AND part = {STALLED}") == in_stalled
                    share = in_stalled / (TENANTS * EACH)
                    assert 0.5 / PARTITIONS <= share <= 2 / PARTITIONS, share
                    # In the proportion the math predicts: k/P of the tenants, within 3 sd.
                    expected = TENANTS * K / PARTITIONS
                    sd = math.sqrt(TENANTS * K / PARTITIONS * (1 - K / PARTITIONS))
                    assert abs(len(mapped) - expected) <= 3 * sd, (len(mapped), expected)

                    # Once the node has counted the stalled backlog, the affected tenants'
                    # new tasks go to their other partition, and run.
                    # (The count is refreshed once a second: wait for one taken after the
                    # other partitions drained.)
                    await wait_for(lambda: node.partitions.backlog == {STALLED: in_stalled})
                    for name in sorted(mapped):
                        clients.append(await submit(server, name, EACH, first=EACH))
                    assert server.count(f"part = {STALLED}") == in_stalled
                    await wait_for(
                        lambda: (
                            server.count(f"state = 'succeeded' AND part <> {STALLED}")
                            == (TENANTS + len(mapped)) * EACH - in_stalled
                        ),
                        timeout=60,
                    )

                    # The hung node's lease runs out: the partition is taken over, drained.
                    await hold_partition(database, STALLED, ttl_s=-1.0)
                    await wait_for(lambda: STALLED in node.partitions.owned, timeout=10)
                    await wait_for(lambda: not unfinished_tenants(server), timeout=30)
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))
