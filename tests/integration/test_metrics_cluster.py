"""Cluster-wide counts on PostgreSQL with two nodes: the rollup adds both nodes'
submits into the same minutes, the timers leader's backlog snapshot is what the other
node serves on its `/metrics` (read from the store, not counted again), and either
node answers a tenant's stats with the cluster's figures."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sluice.api.meters import MetersCollector
from sluice.config import Settings
from sluice.contract import FunctionConfig, TaskSpec
from sluice.engine.node import Node
from tests import pg
from tests.harness import wait_for

pytestmark = pytest.mark.xdist_group("timing")


def waiting_of(node: Node) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetersCollector(node))
    text = generate_latest(registry).decode()
    return {
        (s.labels["function"], s.labels["state"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "sluice_tasks_waiting"
    }


async def test_two_nodes_share_the_rollup_and_the_leaders_snapshot() -> None:
    await pg.require_postgres()
    async with pg.fresh_database() as dsn:
        common = {"database": dsn, "partitions": 4, "partition_k": 2, "dedicated_partitions": 0}
        a = Node(Settings.from_env({}, node_id="node-a", **common))
        b = Node(Settings.from_env({}, node_id="node-b", **common))
        await a.start()
        await b.start()
        try:
            tenant = await a.tenants.ensure("cluster-shop")
            await a.functions.register(tenant.id, [FunctionConfig(name="send")])
            await a.intake.submit(tenant.id, [TaskSpec(function="send")] * 2)
            await b.intake.submit(tenant.id, [TaskSpec(function="send", delay=600)] * 3)
            await wait_for(lambda: a.timers.leader or b.timers.leader)
            leader, follower = (a, b) if a.timers.leader else (b, a)

            await leader.snapshot.take_once()
            await follower.snapshot.read_once()
            await a.meters.flush()
            await b.meters.flush()
            stats = await follower.stats.read(tenant.id, 5)
        finally:
            await b.stop()
            await a.stop()

    expected = {("send", "ready"): 2.0, ("send", "scheduled"): 3.0}
    assert waiting_of(leader) == expected
    assert waiting_of(follower) == expected
    assert stats.totals.submitted == 5
    assert len({m.minute for m in stats.minutes}) <= 2  # both nodes' deltas, same minutes
    assert stats.functions[0].tasks == {"ready": 2, "scheduled": 3}
