"""Tenant fairness alone: start tags at submit and at promotion, chains continued from
the store, the virtual clock kept moving (engine/fairness.py)."""

from __future__ import annotations

from typing import Any

import msgspec

from sluice.clock import FakeClock
from sluice.contract import FunctionConfig, TaskSpec, TenantQuota
from sluice.engine.admission import build_task
from sluice.engine.runtime import Runtime
from sluice.model import SHARED, NewTask
from sluice.policy.sharding import shards
from tests.engine.conftest import FN, claim, lower, make_function, make_task, make_tenant


def new(rt: Runtime, function: str = FN, **spec: Any) -> NewTask:
    return build_task(TaskSpec(function=function, **spec), FunctionConfig(name=function),
                      rt.settings, rt.clock.now())  # fmt: skip


async def test_ready_tasks_get_increasing_tags_and_delayed_ones_wait_at_the_clock(
    rt: Runtime,
) -> None:
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)
    fairness = lower(rt).fairness

    tagged = await fairness.tag(tenant, [new(rt), new(rt), new(rt, delay=60.0), new(rt)])

    assert [t.stag for t in tagged] == [1.0, 2.0, fairness.tags.vclock, 3.0]
    home = shards(tenant, rt.settings.partitions, rt.settings.partition_k)
    assert {t.partition for t in tagged} <= set(home)


async def test_a_tenants_weight_spaces_its_tags_closer(rt: Runtime) -> None:
    below = lower(rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)
    await below.quotas.set(tenant, TenantQuota(weight=2.0))

    tagged = await below.fairness.tag(tenant, [new(rt), new(rt)])

    assert [t.stag for t in tagged] == [0.5, 1.0]


async def test_a_chain_goes_on_from_the_tags_the_store_already_has(rt: Runtime) -> None:
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)
    behind = msgspec.structs.replace(new(rt), stag=50.0)  # another node's, or before a restart
    await rt.store.submit_tasks(tenant, [behind], rt.clock.now())

    tagged = await lower(rt).fairness.tag(tenant, [new(rt)])

    assert tagged[0].stag == 51.0


async def test_own_functions_have_a_chain_each_and_shared_pool_ones_share_one(
    rt: Runtime,
) -> None:
    tenant = await make_tenant(rt)
    await make_function(rt, tenant, "send")
    await make_function(rt, SHARED, "resize")
    await make_function(rt, SHARED, "crop")

    tagged = await lower(rt).fairness.tag(
        tenant, [new(rt, "send"), new(rt, "resize"), new(rt, "crop"), new(rt, "send")]
    )

    assert [t.stag for t in tagged] == [1.0, 1.0, 2.0, 2.0]


async def test_sync_catches_the_clock_up_with_the_store_and_a_new_tenant_starts_there(
    rt: Runtime,
) -> None:
    other, tenant = await make_tenant(rt, "other"), await make_tenant(rt)
    for t in (other, tenant):
        await make_function(rt, t)
    await rt.store.submit_tasks(other, [msgspec.structs.replace(new(rt), stag=40.0)],
                                rt.clock.now())  # fmt: skip
    fairness = lower(rt).fairness

    await fairness.sync()

    assert fairness.tags.vclock == 40.0
    assert [t.stag for t in await fairness.tag(tenant, [new(rt)])] == [41.0]


async def test_promoted_tasks_are_tagged_in_due_order(rt: Runtime, clock: FakeClock) -> None:
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    later = await make_task(rt, tenant, send, delay=2.0)
    sooner = await make_task(rt, tenant, send, delay=1.0)  # made second, due first
    clock.advance(3.0)
    promoted = await rt.store.promote_due(clock.now(), 10)

    await lower(rt).fairness.promoted(promoted)

    assert [t.id for t in await claim(rt, tenant, "w1", n=2)] == [sooner, later]
