"""Pauses alone: a rule holds what it matches now and a moment later on the fake clock;
lifting it releases what no other rule holds (engine/pauses.py)."""

from __future__ import annotations

import pytest

from sluice.clock import FakeClock
from sluice.contract import Selector
from sluice.engine.pauses import SECOND_SWEEP_S, Pauses
from sluice.engine.runtime import Runtime
from sluice.errors import InvalidRequest, NotFound
from sluice.model import PAUSED, READY
from sluice.store import Reaped
from tests.engine.conftest import (
    Lower,
    heard,
    lower,
    make_function,
    make_task,
    make_tenant,
    settle,
    state_of,
    until,
)


def pauses_of(below: Lower, rt: Runtime) -> Pauses:
    return Pauses(rt, below.fairness, below.queues)


async def test_a_pause_holds_the_waiting_tasks_it_matches_and_new_ones_from_then(
    rt: Runtime,
) -> None:
    pauses = pauses_of(lower(rt), rt)
    tenant = await make_tenant(rt)
    send, resize = (
        await make_function(rt, tenant, "send"),
        await make_function(rt, tenant, "resize"),
    )
    matched = [await make_task(rt, tenant, send), await make_task(rt, tenant, send, delay=60)]
    other = await make_task(rt, tenant, resize)

    rule, held = await pauses.pause(tenant, Selector(function=["send"]))

    assert held == 2
    assert [await state_of(rt, tenant, t) for t in matched] == [PAUSED, PAUSED]
    assert await state_of(rt, tenant, other) == READY
    assert pauses.holds(tenant, "send", None, 5) and not pauses.holds(tenant, "resize", None, 5)
    assert heard(rt, "pauses") == [tenant]
    assert [r.id for r in await pauses.list_all(tenant)] == [rule.id]
    await pauses.stop()


async def test_a_second_sweep_on_the_fake_clock_holds_a_task_that_landed_after_the_first(
    rt: Runtime, clock: FakeClock
) -> None:
    pauses = pauses_of(lower(rt), rt)
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    await pauses.pause(tenant, Selector(function=["send"]))
    late = await make_task(rt, tenant, send)  # another node admitted it before the hint
    await until(lambda: clock.waiting == 1)  # the second sweep sleeps on the fake clock

    clock.advance(SECOND_SWEEP_S - 0.01)
    await settle()
    assert await state_of(rt, tenant, late) == READY
    clock.advance(0.02)
    await until(lambda: _is(rt, tenant, late, PAUSED))
    await pauses.stop()


async def _is(rt: Runtime, tenant: str, task_id: str, state: str) -> bool:
    return await state_of(rt, tenant, task_id) == state


async def test_resume_releases_what_no_other_pause_holds_and_tells_the_dispatcher(
    rt: Runtime,
) -> None:
    below = lower(rt)
    pauses = pauses_of(below, rt)
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    tagged = await make_task(rt, tenant, send, tags=["bulk"])
    plain = await make_task(rt, tenant, send)
    by_function, _ = await pauses.pause(tenant, Selector(function=["send"]))
    await pauses.pause(tenant, Selector(tags=["bulk"]))
    generation = below.queues.generation[tenant]

    assert await pauses.resume(tenant, by_function.id) == 1

    assert await state_of(rt, tenant, plain) == READY
    assert await state_of(rt, tenant, tagged) == PAUSED  # the other rule still holds it
    assert below.queues.generation[tenant] == generation + 1
    with pytest.raises(NotFound):
        await pauses.resume(tenant, by_function.id)
    await pauses.stop()


@pytest.mark.parametrize("selector", [Selector(), Selector(state=["ready"])])
async def test_a_pause_needs_a_selector_by_function_tags_or_priority(
    rt: Runtime, selector: Selector
) -> None:
    with pytest.raises(InvalidRequest):
        await pauses_of(lower(rt), rt).pause("acme", selector)


async def test_a_requeued_task_a_pause_matches_is_held(rt: Runtime) -> None:
    pauses = pauses_of(lower(rt), rt)
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    await pauses.pause(tenant, Selector(priority_min=8))
    urgent = await make_task(rt, tenant, send, priority=9)  # ready, as the reaper left it
    normal = await make_task(rt, tenant, send)

    await pauses.hold_requeued([Reaped(tenant, urgent, READY), Reaped(tenant, normal, READY)])

    assert await state_of(rt, tenant, urgent) == PAUSED
    assert await state_of(rt, tenant, normal) == READY
    await pauses.stop()


async def test_stop_cancels_the_second_sweeps_still_waiting(rt: Runtime, clock: FakeClock) -> None:
    pauses = pauses_of(lower(rt), rt)
    await pauses.pause("acme", Selector(function=["send"]))
    await until(lambda: clock.waiting == 1)  # the second sweep sleeps on the fake clock

    await pauses.stop()

    assert clock.waiting == 0
