"""Headroom on a shared pool (docs/scheduling.md), end to end on SQLite and PostgreSQL:
a pool worker of 4 slots; tenant B ran a task on it a moment before; tenant A, new to
the pool, floods it with tasks that hold a slot for 5 s; then B submits one task. B's
task starts at once in the slot the pool kept, instead of after one of A's ends; A runs
3 at a time meanwhile. (Without headroom B would wait the 5 s: tests/engine/test_headroom.py shows
the same rounds on a fake clock, with it on and off.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import sluice
from sluice.client import AsyncClient
from sluice.model import SHARED
from tests.harness import Running, running_server, running_worker, wait_for

POOL_KEY = "pool-secret-for-tests"
HOLD_S = 5.0  # A's tasks: far longer than B may wait
app = sluice.App("headroom")
starts: dict[str, float] = {}  # label -> worker clock at start
ended: set[str] = set()


@app.task
async def hold(label: str, hold_s: float) -> None:
    starts[label] = time.monotonic()
    try:
        await asyncio.sleep(hold_s)
    finally:
        ended.add(label)


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    starts.clear()
    ended.clear()
    async with running_server(tmp_path, app, backend, pool_key=POOL_KEY) as srv:
        await srv.node.functions.register(SHARED, [t.config for t in app.tasks.values()])
        yield srv


async def client_for(server: Running, name: str) -> AsyncClient:
    tenant = await server.node.tenants.ensure(name)
    return AsyncClient(server.url, await server.node.tenants.create_key(tenant.id))


def flood_started() -> list[str]:
    return [label for label in starts if label.startswith("a-")]


@pytest.mark.xdist_group("timing")  # a one-second bound: not beside the other timed tests
async def test_a_quiet_tenant_starts_at_once_beside_a_flood_that_holds_the_pool(
    server: Running,
) -> None:
    a = await client_for(server, "flood")
    b = await client_for(server, "quiet")
    async with a, b, running_worker(server, app, concurrency=4, api_key=POOL_KEY):
        # B ran on the pool lately; A is new to it.
        await b.submit({"function": "hold", "args": ["b-warm", 0.0]})
        await wait_for(lambda: "b-warm" in ended, timeout=10)

        await a.submit_many([{"function": "hold", "args": [f"a-{i}", HOLD_S]} for i in range(12)])
        await wait_for(lambda: len(flood_started()) >= 3, timeout=10)
        submitted = time.monotonic()
        await b.submit({"function": "hold", "args": ["b-1", 0.0]})
        await wait_for(lambda: "b-1" in starts, timeout=HOLD_S - 1.0)

        waited = starts["b-1"] - submitted
        assert waited < 1.0, waited
        flood = flood_started()
        assert len(flood) == 3, flood  # the fourth slot was kept, and B took it
        assert not any(label in ended for label in flood)  # none of A's had ended
