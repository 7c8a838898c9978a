"""A function's own limits hold on shared pools too (issue 19, point 4): the test of
the scheduling issue (tests/integration/test_cluster_limits.py) repeated on a shared pool
with two tenants, on both backends, and across two nodes on PostgreSQL; with a tenant's
own limits at the same time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import sluice
from sluice.client import AsyncClient
from sluice.contract import TenantQuota
from sluice.model import SHARED
from tests.harness import (
    Running,
    _running_server,
    database_for,
    running_server,
    running_worker,
    wait_for,
)

POOL_KEY = "pool-secret-for-tests"
RATE, BURST, EACH = 40.0, 4, 80
app = sluice.App("pool-limits")
starts: list[tuple[str, float]] = []  # (tenant, worker clock) per start
running: defaultdict[str, int] = defaultdict(int)
most: dict[str, int] = {}  # the most running at once: per tenant, and "all"


@app.task(rate=RATE, burst=BURST)
async def limited(tenant: str) -> None:
    starts.append((tenant, time.monotonic()))


@app.task(max_concurrency=3)
async def capped(tenant: str, hold_s: float) -> None:
    starts.append((tenant, time.monotonic()))
    running[tenant] += 1
    running["all"] += 1
    for who in (tenant, "all"):
        most[who] = max(most.get(who, 0), running[who])
    try:
        await asyncio.sleep(hold_s)
    finally:
        running[tenant] -= 1
        running["all"] -= 1


def _clear() -> None:
    starts.clear()
    running.clear()
    most.clear()


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    _clear()
    async with running_server(tmp_path, app, backend, pool_key=POOL_KEY) as srv:
        await srv.node.functions.register(SHARED, [t.config for t in app.tasks.values()])
        yield srv


async def tenant_client(
    server: Running, name: str, quota: TenantQuota | None = None
) -> AsyncClient:
    tenant = await server.node.tenants.ensure(name)
    if quota is not None:
        await server.node.quotas.set(tenant.id, quota)
    return AsyncClient(server.url, await server.node.tenants.create_key(tenant.id))


def assert_rate_held(times: list[float], total: int) -> None:
    """Never more than rate + burst starts in a second, and the rate over the run."""
    times = sorted(times)
    busiest = max(sum(1 for s in times[i:] if s < t + 1.0) for i, t in enumerate(times))
    assert busiest <= RATE + BURST + 1  # +1: a start's clock is not the store's
    assert (total - BURST) / (times[-1] - times[0]) == pytest.approx(RATE, rel=0.2)


async def test_a_pool_functions_rate_holds_for_two_tenants_together(server: Running) -> None:
    a, b = await tenant_client(server, "a"), await tenant_client(server, "b")
    async with a, b:
        for name, client in (("a", a), ("b", b)):
            await client.submit_many([{"function": "limited", "args": [name]}] * EACH)
        async with running_worker(server, app, concurrency=16, api_key=POOL_KEY):
            await wait_for(lambda: len(starts) >= 2 * EACH, timeout=30)
    assert_rate_held([t for _, t in starts], 2 * EACH)
    # Fair shares of the one rate: each tenant had about half of the first starts.
    share = Counter(name for name, _ in sorted(starts, key=lambda s: s[1])[:EACH])
    assert min(share.values()) >= EACH // 3, share


async def test_a_pool_functions_cap_and_a_tenants_own_cap_hold_together(server: Running) -> None:
    small = await tenant_client(server, "small", TenantQuota(max_concurrency=1))
    big = await tenant_client(server, "big")
    async with small, big:
        await small.submit_many([{"function": "capped", "args": ["small", 0.05]}] * 20)
        await big.submit_many([{"function": "capped", "args": ["big", 0.05]}] * 20)
        async with running_worker(server, app, concurrency=8, api_key=POOL_KEY):
            await wait_for(lambda: len(starts) >= 40, timeout=30)
            await wait_for(lambda: running["all"] == 0, timeout=10)
    assert most["all"] == 3  # the function's cap over both tenants: reached, never passed
    assert most["small"] == 1  # the tenant's own cap, under the function's
    assert most["big"] >= 2


async def test_two_nodes_keep_a_pool_functions_rate_for_two_tenants(tmp_path: Path) -> None:
    _clear()
    async with (
        database_for("postgres", tmp_path) as database,
        _running_server(database, app, node_id="node-a", pool_key=POOL_KEY) as a,
        _running_server(database, app, node_id="node-b", pool_key=POOL_KEY) as b,
    ):
        await a.node.functions.register(SHARED, [t.config for t in app.tasks.values()])
        await wait_for(lambda: b.node.functions.cached(SHARED, "limited") is not None)
        one, two = await tenant_client(a, "one"), await tenant_client(b, "two")
        async with one, two:
            ones = await one.submit_many([{"function": "limited", "args": ["one"]}] * EACH)
            twos = await two.submit_many([{"function": "limited", "args": ["two"]}] * EACH)
            async with (
                running_worker(a, app, concurrency=16, api_key=POOL_KEY),
                running_worker(b, app, concurrency=16, api_key=POOL_KEY),
            ):
                await wait_for(lambda: len(starts) >= 2 * EACH, timeout=30)
            # As the cluster test does: the store's dispatch times, on both nodes' claims.
            store = a.node.store
            dispatched, workers = [], set()
            for name, outcomes in (("one", ones), ("two", twos)):
                tenant = await a.node.tenants.ensure(name)
                for outcome in outcomes:
                    [attempt] = await store.list_attempts(tenant.id, outcome.id)
                    dispatched.append(attempt.dispatched_at or 0.0)
                    workers.add(attempt.worker)
    assert_rate_held(dispatched, 2 * EACH)
    assert {name for name, _ in starts} == {"one", "two"}
    assert len(workers) == 2  # both nodes' workers ran tasks
