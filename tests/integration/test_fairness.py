"""Tenant fairness end to end (issue 6 point 2), on SQLite and PostgreSQL: a shared worker
pool serves two tenants; start-time fair queueing interleaves a late tenant's tasks with
another's backlog at once, and weights split the starts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import sluice
from sluice.client import AsyncClient
from sluice.contract import TenantQuota
from sluice.model import SHARED
from sluice.policy.prefetch import MAX_FACTOR
from tests.harness import Running, running_server, running_worker, wait_for

POOL_KEY = "pool-secret-for-tests"
app = sluice.App("fair-pool")
starts: list[tuple[str, int]] = []  # (tenant, i) in the order the shared worker started them


@app.task
async def work(tenant: str, i: int) -> None:
    starts.append((tenant, i))


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    starts.clear()
    async with running_server(tmp_path, app, backend, pool_key=POOL_KEY) as running:
        # The pool's functions, as a shared worker's hello registers them.
        await running.node.functions.register(SHARED, [t.config for t in app.tasks.values()])
        yield running


async def tenant_client(server: Running, name: str, weight: float = 1.0) -> AsyncClient:
    node = server.node
    tenant = await node.tenants.ensure(name)
    if weight != 1.0:
        await node.quotas.set(tenant.id, TenantQuota(weight=weight))
    return AsyncClient(server.url, await node.tenants.create_key(tenant.id))


def calls(tenant: str, n: int) -> list[dict[str, object]]:
    return [{"function": "work", "args": [tenant, i]} for i in range(n)]


async def test_a_late_tenant_is_served_at_once_beside_a_flood(server: Running) -> None:
    a, b = await tenant_client(server, "a"), await tenant_client(server, "b")
    try:
        await a.submit_many(calls("a", 50_000))
        async with running_worker(server, app, concurrency=8, api_key=POOL_KEY):
            await wait_for(lambda: len(starts) >= 500, timeout=30)
            before = len(starts)
            await b.submit_many(calls("b", 100))
            submitted = len(starts)  # A's starts while B's submit was in flight
            await wait_for(lambda: sum(t == "b" for t, _ in starts) == 100, timeout=30)
            after = starts[before:]
            first_b = min(i for i, (t, _) in enumerate(after) if t == "b")
            last_b = max(i for i, (t, _) in enumerate(after) if t == "b")
        # At once: B's first task started by the time its submit returned, give or take
        # the tasks in flight then: the worker's 8 slots and the prefetch window it may
        # hold ahead of them (policy/prefetch.py), all A's, which start first in order.
        # Interleaved: B's 100 took turns with A's backlog, so they all started within
        # about 200 starts, while tens of thousands of A's waited.
        in_flight = 8 * (1 + MAX_FACTOR)
        assert first_b <= submitted - before + in_flight, (first_b, submitted - before)
        assert last_b - first_b < 200 + in_flight, (first_b, last_b)
        assert server.count("state = 'ready'") > 40_000
        # Shared pools see tenants' tasks; the tenants never see each other's.
        assert len([t async for t in b.tasks.list(function="work")]) == 100
    finally:
        await a.aclose()
        await b.aclose()


async def test_weights_split_the_starts_three_to_one(server: Running) -> None:
    a = await tenant_client(server, "heavy", weight=3.0)
    b = await tenant_client(server, "light", weight=1.0)
    try:
        await a.submit_many(calls("heavy", 6_000))
        await b.submit_many(calls("light", 6_000))
        async with running_worker(server, app, concurrency=8, api_key=POOL_KEY):
            await wait_for(lambda: len(starts) >= 4_000, timeout=60)
        counts = Counter(t for t, _ in starts[:4_000])
        assert counts["heavy"] / counts["light"] == pytest.approx(3.0, rel=0.05), counts
    finally:
        await a.aclose()
        await b.aclose()
