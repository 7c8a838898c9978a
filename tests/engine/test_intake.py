"""Submit alone: specs checked, quotas and pauses applied, tags given, committed, then the
dispatcher and the delays told (engine/intake.py)."""

from __future__ import annotations

import random

import pytest

from sluice.clock import FakeClock
from sluice.contract import Selector, TaskSpec, TenantQuota
from sluice.engine.backpressure import Backpressure
from sluice.engine.delays import Delays
from sluice.engine.intake import Intake
from sluice.engine.pauses import Pauses
from sluice.engine.runtime import Runtime
from sluice.errors import InvalidRequest, NotFound, QuotaExceeded, Unavailable
from sluice.model import PAUSED, READY, SCHEDULED
from sluice.policy.backpressure import Backpressure as Policy
from tests.engine.conftest import FN, heard, lower, make_function, make_tenant, state_of


class Built:
    def __init__(self, rt: Runtime) -> None:
        below = lower(rt)
        self.queues, self.quotas = below.queues, below.quotas
        self.pauses = Pauses(rt, below.fairness, below.queues)
        self.delays = Delays(rt, below.fairness, below.queues)
        policy = Policy(rt.clock.now(), random.Random(1))
        backpressure = Backpressure(rt, below.quotas, below.partitions, policy)
        self.intake = Intake(
            rt, functions=below.functions, quotas=below.quotas, pauses=self.pauses,
            fairness=below.fairness, backpressure=backpressure, queues=below.queues,
            delays=self.delays,
        )  # fmt: skip
        self.intake.accepting = True


async def test_a_submit_is_committed_and_the_dispatcher_told_of_its_level_and_function(
    rt: Runtime,
) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)
    floors = built.queues.floors_of((tenant, (FN,)), 0)
    floors.empty.update({3, 8})

    (result,) = await built.intake.submit(tenant, [TaskSpec(function=FN, priority=8)])

    assert result.created and result.state == READY
    assert await state_of(rt, tenant, result.id) == READY
    assert built.queues.generation[tenant] == 1 and heard(rt, "ready") == [tenant]
    assert floors.empty == {3}  # only the level that got work is looked at again


async def test_a_keyed_submit_returns_the_task_made_the_first_time(rt: Runtime) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)

    (first,) = await built.intake.submit(tenant, [TaskSpec(function=FN, key="order-1")])
    (again,) = await built.intake.submit(tenant, [TaskSpec(function=FN, key="order-1")])

    assert (again.id, again.created) == (first.id, False)
    assert built.queues.generation[tenant] == 1  # nothing new to dispatch


async def test_a_delayed_submit_is_held_in_memory_and_fired_at_its_time(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)

    (result,) = await built.intake.submit(tenant, [TaskSpec(function=FN, delay=0.5)])

    assert result.state == SCHEDULED
    assert built.queues.generation[tenant] == 0
    clock.advance(0.5)
    assert await built.delays.fire_due() == 1
    assert await state_of(rt, tenant, result.id) == READY


async def test_a_submit_a_pause_matches_is_held(rt: Runtime) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)
    await built.pauses.pause(tenant, Selector(function=[FN]))

    (result,) = await built.intake.submit(tenant, [TaskSpec(function=FN)])

    assert result.state == PAUSED
    await built.pauses.stop()


async def test_a_function_name_no_function_could_have_is_invalid_and_a_free_one_unknown(
    rt: Runtime,
) -> None:
    """Decoding states the function name's pattern but does not run it (a regex per task);
    admission runs it on a name the tenant has no function of, so a malformed name is
    still a 400 naming its place in the batch, and a well-formed one a 404."""
    built = Built(rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)
    with pytest.raises(InvalidRequest) as invalid:
        await built.intake.submit(tenant, [TaskSpec(function=FN), TaskSpec(function="a b")])
    assert invalid.value.field == "tasks[1].function" and "matching regex" in str(invalid.value)
    with pytest.raises(InvalidRequest) as invalid:
        await built.intake.submit(tenant, [TaskSpec(function="")])
    assert invalid.value.field == "function"
    with pytest.raises(NotFound) as unknown:
        await built.intake.submit(tenant, [TaskSpec(function=FN), TaskSpec(function="later")])
    assert unknown.value.code == "unknown_function" and unknown.value.field == "tasks[1].function"
    assert await rt.store.count_queued(tenant) == 0


async def test_a_refused_submit_commits_nothing(rt: Runtime) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)
    await built.quotas.set(tenant, TenantQuota(max_queued=1))

    with pytest.raises(QuotaExceeded):
        await built.intake.submit(tenant, [TaskSpec(function=FN), TaskSpec(function=FN)])
    with pytest.raises(NotFound):
        await built.intake.submit(tenant, [TaskSpec(function="unknown")])

    assert await rt.store.count_queued(tenant) == 0
    built.intake.accepting = False
    with pytest.raises(Unavailable):
        await built.intake.submit(tenant, [TaskSpec(function=FN)])
