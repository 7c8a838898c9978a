"""The scaling signal, built alone (issue 18, point 4; DESIGN §7): load = ready tasks
that could start now + running + due within 30 s. Paused tasks, and ready tasks beyond
what a limit lets start now (the tenant's quota, the function's rate or concurrency, an
AIMD limit), are reported as held and left out of the load. Answers are kept briefly."""

from __future__ import annotations

import pytest

from sluice.clock import FakeClock
from sluice.contract import DUE_SOON_S, Held, Selector, TenantQuota
from sluice.engine.adaptive import AdaptivePools
from sluice.engine.pauses import Pauses
from sluice.engine.registry import Registry
from sluice.engine.runtime import Runtime
from sluice.engine.scaling import CACHE_S, ScalingSignal
from tests.engine.conftest import FN, Lower, claim, lower, make_function, make_task, make_tenant


@pytest.fixture
async def low(rt: Runtime) -> Lower:
    return lower(rt)


@pytest.fixture
def adaptive(rt: Runtime, low: Lower) -> AdaptivePools:
    return AdaptivePools(rt, Registry(), low.functions, low.queues)


@pytest.fixture
def signal(rt: Runtime, low: Lower, adaptive: AdaptivePools) -> ScalingSignal:
    return ScalingSignal(rt, low.functions, low.quotas, adaptive)


async def test_load_is_ready_plus_running_plus_tasks_due_soon(
    rt: Runtime, signal: ScalingSignal
) -> None:
    tenant = await make_tenant(rt)
    fn = await make_function(rt, tenant)
    for _ in range(5):
        await make_task(rt, tenant, fn)
    await claim(rt, tenant, "w1", n=2)
    await make_task(rt, tenant, fn, delay=DUE_SOON_S / 2)  # due soon: counted
    await make_task(rt, tenant, fn, delay=DUE_SOON_S * 4)  # later: not
    rt.clock.advance(3)  # type: ignore[attr-defined]

    answer = await signal.of(tenant, "default", [])

    assert (answer.ready_dispatchable, answer.running, answer.due_soon) == (3, 2, 1)
    assert answer.load == 6
    assert answer.functions == [FN]
    assert answer.held == Held()
    assert answer.oldest_ready_age_seconds == pytest.approx(3.0)
    assert not answer.capped


async def test_paused_tasks_and_tasks_over_a_concurrency_limit_are_held(
    rt: Runtime, low: Lower, signal: ScalingSignal
) -> None:
    tenant = await make_tenant(rt)
    fn = await make_function(rt, tenant, max_concurrency=3)
    for _ in range(6):
        await make_task(rt, tenant, fn)
    await claim(rt, tenant, "w1", n=2)
    paused = await make_function(rt, tenant, "held")
    await make_task(rt, tenant, paused)
    await Pauses(rt, low.fairness, low.queues).pause(tenant, Selector(function=["held"]))

    answer = await signal.of(tenant, "default", [FN, "held"])

    # 4 ready, 2 running of at most 3: one more can start, 3 wait for the limit.
    assert (answer.ready_dispatchable, answer.running, answer.load) == (1, 2, 3)
    assert answer.held == Held(paused=1, concurrency_limit=3)


async def test_a_rate_lets_its_burst_count_and_holds_the_rest(
    rt: Runtime, signal: ScalingSignal
) -> None:
    tenant = await make_tenant(rt)
    fn = await make_function(rt, tenant, "rated", rate=0.5, burst=2)
    for _ in range(5):
        await make_task(rt, tenant, fn)

    answer = await signal.of(tenant, "default", ["rated"])

    assert (answer.ready_dispatchable, answer.held.rate_limit) == (2, 3)


async def test_the_tenants_quota_and_an_aimd_limit_hold_tasks_too(
    rt: Runtime, low: Lower, adaptive: AdaptivePools, signal: ScalingSignal
) -> None:
    tenant = await make_tenant(rt)
    fn = await make_function(rt, tenant)
    other = await make_function(rt, tenant, "other")
    for _ in range(3):
        await make_task(rt, tenant, fn)
        await make_task(rt, tenant, other)
    await low.quotas.set(tenant, TenantQuota(max_concurrency=2))
    aimd = adaptive.start((tenant, "other"), 1)
    aimd.sent()  # at its limit of 1

    answer = await signal.of(tenant, "default", [])

    assert answer.held == Held(tenant_quota=1, aimd_limit=3)
    assert answer.ready_dispatchable == 2


async def test_answers_are_kept_briefly_and_then_counted_again(
    rt: Runtime, clock: FakeClock, signal: ScalingSignal
) -> None:
    tenant = await make_tenant(rt)
    fn = await make_function(rt, tenant)
    await make_task(rt, tenant, fn)
    first = await signal.of(tenant, "default", [FN])
    await make_task(rt, tenant, fn)

    assert (await signal.of(tenant, "default", [FN])).load == first.load == 1
    clock.advance(CACHE_S * 2)
    assert (await signal.of(tenant, "default", [FN])).load == 2


async def test_a_tenant_with_no_tasks_or_functions_has_no_load(
    rt: Runtime, signal: ScalingSignal
) -> None:
    tenant = await make_tenant(rt)

    answer = await signal.of(tenant, "default", [])

    assert (answer.load, answer.functions, answer.oldest_ready_age_seconds) == (0, [], 0.0)
