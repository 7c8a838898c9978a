"""The dispatcher alone: rounds that claim and deliver to a worker connection over a
send that records frames, woken by hints, polled and rate-limited on the fake clock
(engine/dispatcher.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sluice.clock import FakeClock
from sluice.contract import FunctionConfig
from sluice.engine.adaptive import AdaptivePools
from sluice.engine.asks import Asks
from sluice.engine.dispatcher import Dispatcher
from sluice.engine.registry import Registry, Settling, WorkerConn
from sluice.engine.runtime import Runtime
from sluice.model import READY, RUNNING
from sluice.protocol import Deliver
from tests.engine.conftest import (
    FN,
    Lower,
    Wire,
    lower,
    make_task,
    make_tenant,
    settle,
    state_of,
    until,
    worker,
)


class Built:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.below: Lower = lower(rt)
        self.queues = self.below.queues
        self.registry = Registry()
        settling = Settling()
        adaptive = AdaptivePools(rt, self.registry, self.below.functions, self.queues)
        asks = Asks(rt, self.queues, self.registry, self.below.partitions, adaptive, settling)
        self.asks = asks
        self.dispatcher = Dispatcher(
            rt, self.queues, self.registry, functions=self.below.functions,
            quotas=self.below.quotas, fairness=self.below.fairness,
            partitions=self.below.partitions, adaptive=adaptive, asks=asks, settling=settling,
        )  # fmt: skip
        self.wire = Wire()
        self.tenant = ""
        self.function = FunctionConfig(name=FN)
        self.conn: WorkerConn | None = None

    async def connect(self, slots: int = 4, **config: Any) -> WorkerConn:
        """A tenant, its function, and a worker of it connected here."""
        self.tenant = await make_tenant(self.rt)
        self.function = FunctionConfig(name=FN, **config)
        await self.below.functions.register(self.tenant, [self.function])
        self.conn = worker(self.rt, self.tenant, self.wire, slots=slots)
        self.registry.add(self.conn)
        return self.conn

    async def task(self, priority: int | None = None) -> str:
        return await make_task(self.rt, self.tenant, self.function, priority=priority)

    def delivered(self) -> list[str]:
        return [t.id for frame in self.wire.of(Deliver) for t in frame.tasks]


@pytest.fixture
async def built(rt: Runtime) -> AsyncIterator[Built]:
    built = Built(rt)
    yield built
    if built.conn is not None:
        await built.conn.close()


async def test_a_round_delivers_a_submitted_task_and_marks_the_queue_empty_when_short(
    built: Built, rt: Runtime
) -> None:
    conn = await built.connect(slots=4)
    task = await built.task()

    assert await built.dispatcher.dispatch_round() == 1

    await until(lambda: built.delivered() == [task])
    assert conn.inflight.keys() == {task}
    stored = await rt.store.get_task(built.tenant, task)
    assert stored is not None and (stored.state, stored.lease_owner) == (RUNNING, "w1")
    queue = (built.tenant, (FN,))
    assert built.queues.empty[queue] == built.queues.generation[built.tenant]

    late = await built.task()  # no hint: the queue stays idle, no query is made
    assert await built.dispatcher.dispatch_round() == 0
    built.queues.notify(built.tenant)
    assert await built.dispatcher.dispatch_round() == 1
    await until(lambda: built.delivered() == [task, late])


async def test_higher_priority_goes_first(built: Built) -> None:
    await built.connect(slots=1)
    await built.task(priority=1)
    urgent = await built.task(priority=9)

    assert await built.dispatcher.dispatch_round() == 1

    await until(lambda: built.delivered() == [urgent])


async def test_a_worker_not_heard_from_for_two_heartbeats_gets_nothing(
    built: Built, rt: Runtime, clock: FakeClock
) -> None:
    conn = await built.connect()
    task = await built.task()
    clock.advance(2 * rt.settings.heartbeat_s + 0.1)

    assert await built.dispatcher.dispatch_round() == 0
    assert await state_of(rt, built.tenant, task) == READY
    conn.last_seen = clock.now()  # a heartbeat
    assert await built.dispatcher.dispatch_round() == 1


async def test_a_rate_limited_function_wakes_the_dispatcher_when_its_next_start_is_due(
    built: Built, clock: FakeClock
) -> None:
    await built.connect(rate=1.0, burst=1)
    for _ in range(3):
        await built.task()

    assert await built.dispatcher.dispatch_round() == 1
    built.queues.woken.clear()
    await until(lambda: clock.waiting == 1)  # the rate's next start, on the fake clock
    clock.advance(0.9)
    assert not built.queues.woken.is_set()
    clock.advance(0.1)
    assert built.queues.woken.is_set()
    assert await built.dispatcher.dispatch_round() == 1


async def test_one_tenants_failing_claim_does_not_keep_the_others_workers_idle(
    built: Built, caplog: pytest.LogCaptureFixture
) -> None:
    await built.connect(rate=5.0, burst=5)  # acme: a limited claim of its own
    broken = built.tenant
    await built.task()
    other = await make_tenant(built.rt, "globex")
    function = FunctionConfig(name=FN)
    await built.below.functions.register(other, [function])
    other_wire = Wire()
    other_conn = worker(built.rt, other, other_wire, name="w2")
    built.registry.add(other_conn)
    theirs = await make_task(built.rt, other, function)
    store = built.rt.store
    claim_limited = store.claim_limited

    async def failing(request: Any, *args: Any) -> Any:
        if request.tenant_id == broken:  # a limit the store cannot apply
            raise ValueError("cannot convert float NaN to integer")
        return await claim_limited(request, *args)

    store.claim_limited = failing  # type: ignore[method-assign]
    try:
        assert await built.dispatcher.dispatch_round() == 1
    finally:
        store.claim_limited = claim_limited  # type: ignore[method-assign]
        await other_conn.close()
    assert [t.id for f in other_wire.of(Deliver) for t in f.tasks] == [theirs]
    assert built.delivered() == []
    assert "the round went on without it" in caplog.text
    assert await built.dispatcher.dispatch_round() == 1  # acme's, once its claims work


@contextlib.asynccontextmanager
async def idle_run(built: Built, clock: FakeClock) -> AsyncIterator[str]:
    """`Dispatcher.run()` going, woken by a hint for a first task it delivers, then idle
    until its poll: the queue came back short and the loop waits on the clock (and is not
    about to run again: a round that delivered wakes the loop once more). Yields the
    first task's id."""
    running = asyncio.create_task(built.dispatcher.run())
    try:
        first = await built.task()
        built.queues.notify(built.tenant)  # woken: no time passes
        await until(lambda: built.delivered() == [first])
        queue, generation = (built.tenant, (FN,)), built.queues.generation[built.tenant]
        await until(
            lambda: (
                built.queues.empty.get(queue) == generation
                and clock.waiting == 1
                and not built.queues.woken.is_set()
            )
        )
        yield first
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_run_is_woken_by_a_hint_and_polls_on_the_fake_clock_for_a_lost_one(
    built: Built, rt: Runtime, clock: FakeClock
) -> None:
    await built.connect()
    async with idle_run(built, clock) as first:
        second = await built.task()  # another node's submit, its hint lost
        clock.advance(rt.settings.poll_interval_s - 0.1)
        await settle()
        assert built.delivered() == [first]
        clock.advance(0.1)
        await until(lambda: built.delivered() == [first, second])


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "beside-another-node"])
async def test_the_safety_net_probes_known_empty_queues_alone_and_looks_again_fully_beside_others(
    built: Built, rt: Runtime, clock: FakeClock, alone: bool
) -> None:
    """The poll's round, alone, claims one slot of a queue known empty (its idle slots
    stay free for direct dispatch) and the next round takes the rest; beside another
    node, whose submits wake no one here, every queue is looked at again fully."""
    await built.connect(slots=4)
    if not alone:
        built.below.partitions.others = ("node-b",)
    async with idle_run(built, clock) as first:
        missed = [await built.task() for _ in range(3)]  # stored, their hints lost
        clock.advance(rt.settings.poll_interval_s)
        await until(lambda: built.delivered() == [first, *missed])
        sizes = [len(frame.tasks) for frame in built.wire.of(Deliver)]
        assert sizes == ([1, 1, 2] if alone else [1, 3])
