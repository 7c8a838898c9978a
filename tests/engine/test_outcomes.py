"""What follows an end, alone: waiters woken by an end, long-polls timed out on the fake
clock, finishes turned into requeues and delays, expiry (engine/outcomes.py)."""

from __future__ import annotations

import asyncio
import random

import pytest

from sluice.clock import FakeClock
from sluice.engine.backpressure import Backpressure
from sluice.engine.delays import Delays
from sluice.engine.outcomes import Outcomes
from sluice.engine.runtime import Runtime
from sluice.errors import NotFound
from sluice.model import CANCELLED, DEAD, EXPIRED, READY, SCHEDULED, SUCCEEDED, Finish
from sluice.policy.backpressure import Backpressure as Policy
from sluice.store import ACCEPTED, STALE
from tests.engine.conftest import (
    heard,
    lower,
    make_function,
    make_task,
    make_tenant,
    settle,
    until,
)


class Built:
    def __init__(self, rt: Runtime) -> None:
        below = lower(rt)
        self.queues = below.queues
        self.delays = Delays(rt, below.fairness, below.queues)
        policy = Policy(rt.clock.now(), random.Random(1))
        self.backpressure = Backpressure(rt, below.quotas, below.partitions, policy)
        self.outcomes = Outcomes(rt, self.queues, self.delays, self.backpressure)


async def test_a_waiter_is_woken_by_an_end_without_the_clock_moving(rt: Runtime) -> None:
    outcomes = Built(rt).outcomes
    tenant = await make_tenant(rt)
    task = await make_task(rt, tenant, await make_function(rt, tenant))
    waiting = asyncio.create_task(outcomes.wait(tenant, task, timeout=30.0))
    await until(lambda: rt.clock.waiting == 1)  # read the task, now waiting for its end

    await rt.store.cancel_tasks(tenant, [task], rt.clock.now())
    outcomes.ended(task)

    assert (await waiting).state == CANCELLED
    assert heard(rt, "done") == [task]


async def test_a_wait_returns_the_task_as_it_is_at_the_fake_clocks_timeout(
    rt: Runtime, clock: FakeClock
) -> None:
    outcomes = Built(rt).outcomes
    tenant = await make_tenant(rt)
    task = await make_task(rt, tenant, await make_function(rt, tenant))
    waiting = asyncio.create_task(outcomes.wait(tenant, task, timeout=5.0))
    await until(lambda: clock.waiting == 1)

    clock.advance(4.9)
    await settle()
    assert not waiting.done()
    clock.advance(0.2)

    assert (await waiting).state == READY
    with pytest.raises(NotFound):
        await outcomes.wait(tenant, "no-such-task", timeout=1.0)


async def test_finishes_end_waiters_requeue_retries_and_hold_delayed_ones_in_memory(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    retry_later = await make_task(rt, tenant, send, delay=1.0)  # as a retry leaves it
    ended = await make_task(rt, tenant, send)
    waiting = asyncio.create_task(built.outcomes.wait(tenant, ended, timeout=30.0))
    await until(lambda: clock.waiting == 1)
    await rt.store.cancel_tasks(tenant, [ended], clock.now())
    generation = built.queues.generation[tenant]

    def finish(task_id: str, state: str, run_at: float | None = None) -> Finish:
        return Finish(tenant, task_id, 1, "w1", state, "failed", None, None, clock.now(),
                      run_at=run_at)  # fmt: skip

    built.outcomes.finished(
        [finish(ended, SUCCEEDED), finish("t-ready", READY),
         finish(retry_later, SCHEDULED, clock.now() + 1.0), finish("t-stale", DEAD)],
        [ACCEPTED, ACCEPTED, ACCEPTED, STALE],
    )  # fmt: skip

    assert (await waiting).state == CANCELLED
    assert built.queues.generation[tenant] == generation + 1  # the requeued retry
    assert built.backpressure.finished == 3  # what the workers got through
    assert heard(rt, "done") == [ended]  # not the stale one
    clock.advance(1.0)
    assert await built.delays.fire_due() == 1


async def test_a_task_not_started_by_its_expiry_on_the_fake_clock_expires(
    rt: Runtime, clock: FakeClock
) -> None:
    outcomes = Built(rt).outcomes
    tenant = await make_tenant(rt)
    task = await make_task(rt, tenant, await make_function(rt, tenant), ttl=10.0)

    clock.advance(9.0)
    assert await outcomes.expire_once() == 0
    clock.advance(2.0)
    assert await outcomes.expire_once() == 1

    assert (await outcomes.wait(tenant, task, timeout=1.0)).state == EXPIRED
    assert heard(rt, "done") == [task]


async def test_close_gives_up_every_waiter(rt: Runtime, clock: FakeClock) -> None:
    outcomes = Built(rt).outcomes
    tenant = await make_tenant(rt)
    task = await make_task(rt, tenant, await make_function(rt, tenant))
    waiting = asyncio.create_task(outcomes.wait(tenant, task, timeout=30.0))
    await until(lambda: clock.waiting == 1)

    outcomes.close()

    with pytest.raises(asyncio.CancelledError):
        await waiting
