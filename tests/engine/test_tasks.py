"""The task verbs alone: cancel (telling a running task's worker), delete, retry, verbs
by selector, and waiting on the fake clock (engine/tasks.py)."""

from __future__ import annotations

import asyncio
import random

import pytest

from sluice.clock import FakeClock
from sluice.contract import Selector
from sluice.engine.backpressure import Backpressure
from sluice.engine.delays import Delays
from sluice.engine.outcomes import Outcomes
from sluice.engine.registry import Registry
from sluice.engine.runtime import Runtime
from sluice.engine.tasks import Tasks
from sluice.errors import Conflict, NotFound
from sluice.model import CANCELLED, DEAD, READY, Finish
from sluice.policy.backpressure import Backpressure as Policy
from sluice.protocol import Cancel
from tests.engine.conftest import (
    FN,
    Wire,
    claim,
    heard,
    lower,
    make_function,
    make_task,
    make_tenant,
    until,
    worker,
)


class Built:
    def __init__(self, rt: Runtime) -> None:
        below = lower(rt)
        self.rt = rt
        self.queues = below.queues
        self.registry = Registry()
        delays = Delays(rt, below.fairness, below.queues)
        policy = Policy(rt.clock.now(), random.Random(1))
        backpressure = Backpressure(rt, below.quotas, below.partitions, policy)
        self.outcomes = Outcomes(rt, below.queues, delays, backpressure)
        self.tasks = Tasks(rt, below.functions, below.queues, self.outcomes, self.registry)

    async def tenant(self) -> tuple[str, list[str]]:
        tenant = await make_tenant(self.rt)
        send = await make_function(self.rt, tenant)
        return tenant, [await make_task(self.rt, tenant, send) for _ in range(3)]


async def make_dead(rt: Runtime, tenant: str) -> None:
    """Run the tenant's next task and have it rejected: dead."""
    (running,) = await claim(rt, tenant, "w1")
    now = rt.clock.now()
    dead = Finish(tenant, running.id, running.attempt, "w1", DEAD, "rejected",
                  running.dispatched_at, now, now)  # fmt: skip
    await rt.store.finish_attempts([dead], now)


async def test_cancelling_a_running_task_tells_its_worker_here_to_stop_it(rt: Runtime) -> None:
    built = Built(rt)
    tenant, (task, *_) = await built.tenant()
    wire = Wire()
    conn = worker(rt, tenant, wire)
    built.registry.add(conn)
    await claim(rt, tenant, "w1")

    assert (await built.tasks.cancel(tenant, task)).state == CANCELLED

    (stop,) = await until(lambda: wire.of(Cancel))
    assert stop.ids == [task]
    assert heard(rt, "done") == [task] and heard(rt, "cancel") == []
    assert (await built.tasks.cancel(tenant, task)).state == CANCELLED  # again: the same
    await conn.close()


async def test_cancelling_a_task_whose_worker_is_elsewhere_tells_the_other_nodes(
    rt: Runtime,
) -> None:
    built = Built(rt)
    tenant, (task, *_) = await built.tenant()
    await claim(rt, tenant, "w-elsewhere")

    await built.tasks.cancel(tenant, task)

    assert heard(rt, "cancel") == [f"{tenant}|w-elsewhere|{task}"]


async def test_a_dead_task_is_retried_by_hand_and_the_dispatcher_told(rt: Runtime) -> None:
    built = Built(rt)
    tenant, (task, *_) = await built.tenant()
    await make_dead(rt, tenant)
    generation = built.queues.generation[tenant]

    assert (await built.tasks.retry(tenant, task)).state == READY

    assert built.queues.generation[tenant] == generation + 1
    with pytest.raises(Conflict):
        await built.tasks.retry(tenant, task)  # only dead tasks


async def test_a_task_that_ended_otherwise_cannot_be_cancelled(rt: Runtime) -> None:
    built = Built(rt)
    tenant, (task, *_) = await built.tenant()
    await make_dead(rt, tenant)

    with pytest.raises(Conflict) as refused:
        await built.tasks.cancel(tenant, task)
    assert refused.value.code == "task_ended"


async def test_verbs_by_selector_count_what_they_did_and_delete_refuses_a_running_task(
    rt: Runtime,
) -> None:
    built = Built(rt)
    tenant, tasks = await built.tenant()
    (running,) = await claim(rt, tenant, "w1")

    with pytest.raises(Conflict):
        await built.tasks.delete(tenant, running.id)
    assert await built.tasks.bulk(tenant, "cancel", Selector(function=[FN])) == 3
    assert await built.tasks.bulk(tenant, "delete", Selector(state=[CANCELLED])) == 3
    with pytest.raises(NotFound):
        await built.tasks.get(tenant, tasks[0])


async def test_detail_waits_for_the_end_until_the_fake_clocks_timeout(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    tenant, (task, *_) = await built.tenant()
    waiting = asyncio.create_task(built.tasks.detail(tenant, task, wait=10.0))
    await until(lambda: clock.waiting == 1)

    clock.advance(10.0)

    detail = await waiting
    assert (detail.task.id, detail.task.state, detail.attempts) == (task, READY, [])
