"""Delayed tasks alone: promoted at their time on the fake clock from the in-memory heap,
and from the store's time index by `promote_once` (engine/delays.py)."""

from __future__ import annotations

import asyncio
import contextlib

from sluice.clock import FakeClock
from sluice.engine.delays import Delays
from sluice.engine.runtime import Runtime
from sluice.model import READY, SCHEDULED
from tests.engine.conftest import (
    Lower,
    lower,
    make_function,
    make_task,
    make_tenant,
    settle,
    state_of,
    until,
)


def delays_of(below: Lower, rt: Runtime) -> Delays:
    return Delays(rt, below.fairness, below.queues)


async def delayed(rt: Runtime, delays: Delays, tenant: str, delay: float) -> str:
    """A delayed task, held in memory as a submit holds it."""
    send = await make_function(rt, tenant)
    task_id = await make_task(rt, tenant, send, delay=delay)
    delays.schedule(rt.clock.now() + delay, tenant, task_id)
    return task_id


async def test_run_promotes_a_task_due_in_half_a_second_when_the_clock_passes_it_not_before(
    rt: Runtime, clock: FakeClock
) -> None:
    below = lower(rt)
    delays = delays_of(below, rt)
    tenant = await make_tenant(rt)
    task = await delayed(rt, delays, tenant, 0.5)
    generation = below.queues.generation[tenant]
    running = asyncio.create_task(delays.run())
    try:
        await until(lambda: clock.waiting == 1)  # waiting for the task's time
        clock.advance(0.49)
        await settle()
        assert await state_of(rt, tenant, task) == SCHEDULED
        clock.advance(0.02)
        await until(lambda: below.queues.generation[tenant] > generation)
        assert await state_of(rt, tenant, task) == READY
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_a_sooner_task_wakes_the_loop_waiting_for_a_later_one(
    rt: Runtime, clock: FakeClock
) -> None:
    delays = delays_of(lower(rt), rt)
    tenant = await make_tenant(rt)
    later = await delayed(rt, delays, tenant, 5.0)
    running = asyncio.create_task(delays.run())
    try:
        await until(lambda: clock.waiting == 1)
        sooner = await delayed(rt, delays, tenant, 1.0)
        await until(lambda: clock.waiting == 1)  # waiting afresh, for the sooner one
        clock.advance(1.0)
        await until(lambda: _is(rt, tenant, sooner, READY))
        assert await state_of(rt, tenant, later) == SCHEDULED
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def _is(rt: Runtime, tenant: str, task_id: str, state: str) -> bool:
    return await state_of(rt, tenant, task_id) == state


async def test_fire_due_promotes_only_the_tasks_that_are_due(rt: Runtime, clock: FakeClock) -> None:
    delays = delays_of(lower(rt), rt)
    tenant = await make_tenant(rt)
    first, second = await delayed(rt, delays, tenant, 1.0), await delayed(rt, delays, tenant, 3.0)

    assert await delays.fire_due() == 0
    clock.advance(1.5)
    assert await delays.fire_due() == 1
    assert (await state_of(rt, tenant, first), await state_of(rt, tenant, second)) == (
        READY, SCHEDULED,
    )  # fmt: skip


async def test_promote_once_promotes_what_is_due_and_loads_the_horizon_into_the_heap(
    rt: Runtime, clock: FakeClock
) -> None:
    below = lower(rt)
    delays = delays_of(below, rt)  # a fresh node: nothing in its heap
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    due = await make_task(rt, tenant, send, delay=0.5)
    soon = await make_task(rt, tenant, send, delay=2.0)
    far = await make_task(rt, tenant, send, delay=rt.settings.timer_horizon_s + 60)
    clock.advance(1.0)

    assert await delays.promote_once() == 1
    assert await state_of(rt, tenant, due) == READY
    assert below.queues.generation[tenant] == 1

    clock.advance(1.0)
    assert await delays.fire_due() == 1  # `soon` came from the store's time index
    assert await state_of(rt, tenant, soon) == READY
    clock.advance(rt.settings.timer_horizon_s + 60)
    assert await delays.fire_due() == 0  # `far` was past the horizon: never in memory
    assert await delays.promote_once() == 1
    assert await state_of(rt, tenant, far) == READY


async def test_a_task_due_past_the_horizon_is_not_held_in_memory(
    rt: Runtime, clock: FakeClock
) -> None:
    delays = delays_of(lower(rt), rt)
    tenant = await make_tenant(rt)
    await delayed(rt, delays, tenant, rt.settings.timer_horizon_s + 1)

    clock.advance(rt.settings.timer_horizon_s + 2)

    assert await delays.fire_due() == 0
