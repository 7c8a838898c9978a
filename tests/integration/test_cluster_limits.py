"""Limits hold across server nodes: two nodes on one PostgreSQL database, a worker on
each, one rate-limited function. Together they never start more than rate + burst in any
second, and both workers share the work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sluice
from sluice.contract import TenantQuota
from sluice.model import AttemptRecord
from tests.harness import Running, _running_server, database_for, running_worker, wait_for

RATE, BURST, TOTAL = 100.0, 10, 400
app = sluice.App("cluster-limits")


@app.task(rate=RATE, burst=BURST)
async def limited(n: int) -> int:
    return n


async def run_on_both(
    app: sluice.App, task: Any, a: Running, b: Running, via: Running
) -> list[AttemptRecord]:
    """Submit TOTAL tasks through `via`, run a worker on each node until all succeed,
    and return each task's first attempt."""
    app.configure(url=via.url, api_key=via.api_key)
    try:
        handles = await task.asubmit_many([(i,) for i in range(TOTAL)])
        async with running_worker(a, app, concurrency=32), running_worker(b, app, concurrency=32):
            await wait_for(lambda: a.count("state = 'succeeded'") == TOTAL, timeout=30)
    finally:
        if app._aclient is not None:
            await app._aclient.aclose()
        app.configure()
    return [(await a.node.store.list_attempts(a.tenant_id, h.id))[0] for h in handles]


def assert_rate_held(attempts: list[AttemptRecord]) -> None:
    """Never more than rate + burst starts in a second; the rate over the run; both
    nodes' workers took part."""
    starts = sorted(x.dispatched_at or 0.0 for x in attempts)
    busiest = max(sum(1 for s in starts[i:] if s < t + 1.0) for i, t in enumerate(starts))
    assert busiest <= RATE + BURST
    assert (TOTAL - BURST) / (starts[-1] - starts[0]) == pytest.approx(RATE, rel=0.15)
    assert len({x.worker for x in attempts}) == 2  # both workers ran tasks


async def test_two_nodes_together_keep_one_rate_limit(tmp_path: Path) -> None:
    async with (
        database_for("postgres", tmp_path) as database,
        _running_server(database, app, node_id="node-a") as a,
        _running_server(database, app, node_id="node-b") as b,
    ):
        attempts = await run_on_both(app, limited, a, b, via=a)
    assert_rate_held(attempts)


plain = sluice.App("cluster-tenant-limits")


@plain.task
async def unlimited(n: int) -> int:
    return n


async def test_two_nodes_together_keep_a_tenants_own_limits(tmp_path: Path) -> None:
    """The same for a tenant's quota (rate and concurrency over all its functions): set
    on one node, enforced by both."""
    async with (
        database_for("postgres", tmp_path) as database,
        _running_server(database, plain, node_id="node-a") as a,
        _running_server(database, plain, node_id="node-b") as b,
    ):
        await a.node.quotas.set(a.tenant_id, TenantQuota(rate=RATE, burst=BURST))
        await wait_for(lambda: b.node.quotas.cached(b.tenant_id) is not None, timeout=10)
        attempts = await run_on_both(plain, unlimited, a, b, via=b)
    assert_rate_held(attempts)
