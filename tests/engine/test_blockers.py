"""Blockers, built alone (issue: observability, point B): a task in each situation says
why it has not started: scheduled for later, paused by a pause, its partition with no
live owner, no worker for its function, the tenant's quota, the function's rate or
concurrency limit, an AIMD limit, or queued behind N tasks in fair order. The held
counts for the gauges come from the same logic."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sluice.contract import AHEAD_CAP, Selector, TenantQuota
from sluice.engine.adaptive import AdaptivePools
from sluice.engine.blockers import Blockers, _queued
from sluice.engine.pauses import Pauses
from sluice.engine.registry import Registry
from sluice.engine.runtime import Runtime
from sluice.policy.aimd import Aimd
from sluice.store import BacklogRow, ClaimRequest, Limit
from tests.engine.conftest import (
    FN,
    Lower,
    Wire,
    claim,
    lower,
    make_function,
    make_task,
    make_tenant,
    worker,
)


@dataclass
class Target:
    aimd: Aimd


class Targets:
    def __init__(self) -> None:
        self.conns: dict[tuple[str, str], Target] = {}

    def items(self) -> list[tuple[tuple[str, str], Target]]:
        return list(self.conns.items())


@dataclass
class World:
    rt: Runtime
    low: Lower
    registry: Registry
    pauses: Pauses
    adaptive: AdaptivePools
    targets: Targets
    blockers: Blockers
    tenant: str

    async def why(self, task_id: str):  # type: ignore[no-untyped-def]
        return await self.blockers.why_task(self.tenant, task_id)


@pytest.fixture
async def world(rt: Runtime) -> World:
    low = lower(rt)
    registry = Registry()
    pauses = Pauses(rt, low.fairness, low.queues)
    adaptive = AdaptivePools(rt, registry, low.functions, low.queues)
    targets = Targets()
    blockers = Blockers(rt, registry, functions=low.functions, quotas=low.quotas,
                        pauses=pauses, partitions=low.partitions, adaptive=adaptive,
                        targets=targets)  # fmt: skip
    await low.partitions.balance()  # this node owns every partition, as a lone node does
    tenant = await make_tenant(rt)
    registry.add(worker(rt, tenant, Wire()))  # a worker serves FN
    return World(rt, low, registry, pauses, adaptive, targets, blockers, tenant)


async def test_a_delayed_task_waits_for_its_time(world: World) -> None:
    fn = await make_function(world.rt, world.tenant)
    task_id = await make_task(world.rt, world.tenant, fn, delay=600)

    waiting = await world.why(task_id)

    assert waiting.reason == "scheduled"
    assert waiting.run_at == world.rt.clock.now() + 600
    assert "in 600.0 s" in waiting.message


async def test_a_paused_task_names_the_pause_that_holds_it(world: World) -> None:
    fn = await make_function(world.rt, world.tenant)
    task_id = await make_task(world.rt, world.tenant, fn)
    pause, held = await world.pauses.pause(world.tenant, Selector(function=[FN]))

    waiting = await world.why(task_id)

    assert held == 1
    assert (waiting.reason, waiting.pause_id) == ("paused", pause.id)
    assert pause.id in waiting.message


async def test_a_task_whose_partition_has_no_live_owner_says_so(world: World) -> None:
    fn = await make_function(world.rt, world.tenant)
    task_id = await make_task(world.rt, world.tenant, fn)
    await world.low.partitions.release()  # the only node let its partitions go

    waiting = await world.why(task_id)

    assert (waiting.reason, waiting.partition) == ("no_partition_owner", 0)


async def test_a_task_no_connected_worker_serves_says_so(world: World) -> None:
    fn = await make_function(world.rt, world.tenant, "resize")
    task_id = await make_task(world.rt, world.tenant, fn)

    waiting = await world.why(task_id)

    assert waiting.reason == "no_worker"
    assert "resize" in waiting.message


async def test_a_task_held_by_the_tenants_quota_says_so(world: World) -> None:
    fn = await make_function(world.rt, world.tenant)
    await make_task(world.rt, world.tenant, fn)
    task_id = await make_task(world.rt, world.tenant, fn)
    await world.low.quotas.set(world.tenant, TenantQuota(max_concurrency=1))
    await claim(world.rt, world.tenant, "w1")

    waiting = await world.why(task_id)

    assert (waiting.reason, waiting.limit, waiting.running) == ("tenant_quota", 1, 1)
    assert waiting.message.startswith("the tenant's quota")


async def test_a_task_held_by_its_functions_rate_says_when_the_next_start_is(
    world: World,
) -> None:
    rt = world.rt
    fn = await make_function(rt, world.tenant, rate=0.5)
    await make_task(rt, world.tenant, fn)
    task_id = await make_task(rt, world.tenant, fn)
    limit = Limit(f"{world.tenant}:{FN}", FN, rate=0.5)
    request = ClaimRequest(world.tenant, "w1", (FN,), 2)
    claimed = await rt.store.claim_limited(request, [limit], rt.clock.now(), 30.0)

    waiting = await world.why(task_id)

    assert len(claimed.tasks) == 1  # the burst of one was used
    assert (waiting.reason, waiting.limit) == ("rate_limit", 0.5)
    assert waiting.retry_at == pytest.approx(rt.clock.now() + 2.0)


async def test_a_task_held_by_its_functions_concurrency_says_how_many_run(world: World) -> None:
    fn = await make_function(world.rt, world.tenant, max_concurrency=1)
    await make_task(world.rt, world.tenant, fn)
    task_id = await make_task(world.rt, world.tenant, fn)
    await claim(world.rt, world.tenant, "w1")

    waiting = await world.why(task_id)

    assert (waiting.reason, waiting.limit, waiting.running) == ("concurrency_limit", 1, 1)


async def test_a_task_held_by_an_aimd_limit_says_so(world: World) -> None:
    fn = await make_function(world.rt, world.tenant)
    task_id = await make_task(world.rt, world.tenant, fn)
    aimd = world.adaptive.start((world.tenant, FN), 2)
    aimd.sent()
    aimd.sent()

    waiting = await world.why(task_id)

    assert (waiting.reason, waiting.limit, waiting.running) == ("aimd_limit", 2, 2)


async def test_a_task_held_by_an_http_targets_aimd_limit_says_so(world: World) -> None:
    fn = await make_function(world.rt, world.tenant)
    task_id = await make_task(world.rt, world.tenant, fn)
    target = Aimd(world.rt.clock.now(), initial=1)
    target.sent()
    world.targets.conns[(world.tenant, FN)] = Target(target)

    assert (await world.why(task_id)).reason == "aimd_limit"


async def test_a_task_behind_others_says_how_many_are_ahead(world: World) -> None:
    fn = await make_function(world.rt, world.tenant)
    first = await make_task(world.rt, world.tenant, fn)
    for _ in range(2):
        await make_task(world.rt, world.tenant, fn)
    last = await make_task(world.rt, world.tenant, fn)
    urgent = await make_task(world.rt, world.tenant, fn, priority=9)

    waiting = await world.why(last)

    assert (waiting.reason, waiting.ahead, waiting.ahead_capped) == ("queued", 4, False)
    assert waiting.message == "queued behind 4 ready tasks of its function in fair order"
    assert (await world.why(first)).ahead == 1  # only the higher priority one
    assert (await world.why(urgent)).message.startswith("it is next in line")


def test_a_count_at_the_cap_reads_as_at_least_the_cap() -> None:
    waiting = _queued(AHEAD_CAP)

    assert waiting.ahead_capped
    assert "10,000+" in waiting.message


async def test_a_running_task_is_not_waiting(world: World) -> None:
    fn = await make_function(world.rt, world.tenant)
    task_id = await make_task(world.rt, world.tenant, fn)
    await claim(world.rt, world.tenant, "w1")

    assert await world.why(task_id) is None


async def test_held_counts_the_ready_tasks_a_limit_holds_per_function(world: World) -> None:
    await make_function(world.rt, world.tenant, max_concurrency=2)
    await make_function(world.rt, world.tenant, "free")
    rows = [
        BacklogRow(world.tenant, FN, "ready", 7),
        BacklogRow(world.tenant, FN, "running", 2),
        BacklogRow(world.tenant, "free", "ready", 3),
    ]

    held = await world.blockers.held(rows)

    assert held == [BacklogRow(world.tenant, FN, "held:concurrency_limit", 7)]
