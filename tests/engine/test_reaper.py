"""Task leases alone: renewed for the workers heard from lately, reaped when they run
out on the fake clock (engine/reaper.py)."""

from __future__ import annotations

import asyncio
import random

import pytest

from sluice.clock import FakeClock
from sluice.contract import Selector
from sluice.engine.backpressure import Backpressure
from sluice.engine.delays import Delays
from sluice.engine.outcomes import Outcomes
from sluice.engine.pauses import Pauses
from sluice.engine.reaper import LOST, Reaper
from sluice.engine.registry import Registry
from sluice.engine.runtime import Runtime
from sluice.model import DEAD, PAUSED, READY, RUNNING
from sluice.policy.backpressure import Backpressure as Policy
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
        self.pauses = Pauses(rt, below.fairness, below.queues)
        policy = Policy(rt.clock.now(), random.Random(1))
        backpressure = Backpressure(rt, below.quotas, below.partitions, policy)
        delays = Delays(rt, below.fairness, below.queues)
        self.outcomes = Outcomes(rt, below.queues, delays, backpressure)
        self.reaper = Reaper(rt, self.registry, self.pauses, below.queues, self.outcomes)

    async def running(self, **spec: object) -> tuple[str, str]:
        """A tenant's task, leased to worker w1 for lease_s from now."""
        tenant = await make_tenant(self.rt)
        task = await make_task(self.rt, tenant, await make_function(self.rt, tenant), **spec)
        await claim(self.rt, tenant, "w1")
        return tenant, task


async def test_a_lease_that_ran_out_on_the_fake_clock_is_reaped_and_the_task_is_ready(
    rt: Runtime, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    built = Built(rt)
    tenant, task = await built.running()
    generation = built.queues.generation[tenant]

    clock.advance(rt.settings.lease_s - 0.1)
    assert await built.reaper.reap_once() == 0
    clock.advance(0.2)
    assert await built.reaper.reap_once() == 1

    stored = await rt.store.get_task(tenant, task)
    assert stored is not None and (stored.state, stored.lease_owner) == (READY, None)
    assert built.queues.generation[tenant] == generation + 1
    assert heard(rt, "ready") == [tenant]
    (attempt,) = await rt.store.list_attempts(tenant, task)
    assert attempt.outcome == "lost"
    # One line, as `sluice dev` shows a failed attempt: function, id, attempt, why.
    assert caplog.messages == [f"task failed: {FN} {task} attempt 1/25: {LOST}; ready again"]


async def test_a_task_reaped_on_its_last_attempt_is_dead_and_its_waiter_woken(
    rt: Runtime, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    built = Built(rt)
    tenant, task = await built.running(max_attempts=1)
    waiting = asyncio.create_task(built.outcomes.wait(tenant, task, timeout=60.0))
    await until(lambda: clock.waiting == 1)

    clock.advance(rt.settings.lease_s + 0.1)
    await built.reaper.reap_once()

    assert (await waiting).state == DEAD
    assert caplog.messages == [
        f"task dead: {FN} {task} after attempt 1/1: {LOST} (sluice tasks get {task})"
    ]


async def test_a_reaped_task_a_pause_matches_is_held(rt: Runtime, clock: FakeClock) -> None:
    built = Built(rt)
    tenant, task = await built.running(tags=["bulk"])
    await built.pauses.pause(tenant, Selector(tags=["bulk"]))  # running tasks finish

    clock.advance(rt.settings.lease_s + 0.1)
    await built.reaper.reap_once()

    stored = await rt.store.get_task(tenant, task)
    assert stored is not None and stored.state == PAUSED
    await built.pauses.stop()


async def test_leases_are_renewed_for_workers_heard_from_within_two_heartbeats(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    conns = {}
    for name in ("heard", "silent"):
        await make_task(rt, tenant, send)
        (task,) = await claim(rt, tenant, name)
        conns[name] = conn = worker(rt, tenant, Wire(), name=name)
        conn.deliver([task])
        built.registry.add(conn)
    clock.advance(2 * rt.settings.heartbeat_s + 1)
    conns["heard"].last_seen = clock.now()

    await built.reaper.renew_once()

    leases = {}
    for name, conn in conns.items():
        (task_id,) = conn.inflight
        stored = await rt.store.get_task(tenant, task_id)
        assert stored is not None and stored.state == RUNNING
        leases[name] = stored.lease_until
    assert leases["heard"] == clock.now() + rt.settings.lease_s
    assert leases["silent"] < clock.now() + rt.settings.lease_s - 2 * rt.settings.heartbeat_s
    for conn in conns.values():
        await conn.close()
