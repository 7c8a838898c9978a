"""Direct dispatch: a submit that finds an idle slot commits its task leased to it and
pushes it, with no round, and only when that cannot change who runs first
(engine/direct.py, engine/intake.py). Rounds are run by hand, so every
step is seen; the store is each backend's."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sluice.clock import FakeClock
from sluice.contract import FunctionConfig, Selector, TaskSpec, TenantQuota
from sluice.engine.adaptive import AdaptivePools
from sluice.engine.asks import Asks
from sluice.engine.backpressure import Backpressure
from sluice.engine.delays import Delays
from sluice.engine.direct import DirectDispatch
from sluice.engine.dispatcher import PROBE_SLOTS, Dispatcher
from sluice.engine.intake import Intake
from sluice.engine.pauses import Pauses
from sluice.engine.registry import Registry, Settling, WorkerConn
from sluice.engine.runtime import Runtime
from sluice.model import PAUSED, READY, RUNNING, SCHEDULED
from sluice.policy.backpressure import Backpressure as Policy
from sluice.protocol import Deliver
from tests.engine.conftest import (
    FN,
    Wire,
    lower,
    make_task,
    make_tenant,
    state_of,
    until,
    with_settings,
)


class Built:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        below = lower(rt)
        self.queues, self.quotas, self.functions = below.queues, below.quotas, below.functions
        self.registry = Registry()
        settling = Settling()
        self.adaptive = AdaptivePools(rt, self.registry, below.functions, below.queues)
        asks = Asks(rt, below.queues, self.registry, below.partitions, self.adaptive, settling)
        self.dispatcher = Dispatcher(
            rt, below.queues, self.registry, functions=below.functions, quotas=below.quotas,
            fairness=below.fairness, partitions=below.partitions, adaptive=self.adaptive,
            asks=asks, settling=settling,
        )  # fmt: skip
        self.direct = DirectDispatch(
            rt, below.queues, self.registry, functions=below.functions, quotas=below.quotas,
            partitions=below.partitions, adaptive=self.adaptive,
        )  # fmt: skip
        self.pauses = Pauses(rt, below.fairness, below.queues)
        self.delays = Delays(rt, below.fairness, below.queues)
        self.delays.direct = self.direct
        policy = Policy(rt.clock.now(), random.Random(1))
        self.intake = Intake(
            rt, functions=below.functions, quotas=below.quotas, pauses=self.pauses,
            fairness=below.fairness, queues=below.queues,
            backpressure=Backpressure(rt, below.quotas, below.partitions, policy),
            delays=self.delays, direct=self.direct,
        )  # fmt: skip
        self.intake.accepting = True
        self.wire = Wire()
        self.tenant = ""
        self.conn: WorkerConn | None = None

    async def connect(self, slots: int, **config: object) -> WorkerConn:
        """A tenant, its function, a worker of it, and the round that finds the worker's
        queue empty (what an idle worker's first round does)."""
        self.tenant = await make_tenant(self.rt)
        await self.functions.register(self.tenant, [FunctionConfig(name=FN, **config)])
        self.conn = WorkerConn(self.tenant, "w1", slots, (FN,), self.wire.send, self.rt.clock.now())
        self.registry.add(self.conn)
        assert await self.dispatcher.dispatch_round() == 0
        return self.conn

    async def submit(self, priority: int = 0, delay: float | None = None) -> tuple[str, str]:
        spec = TaskSpec(function=FN, priority=priority, delay=delay)
        (result,) = await self.intake.submit(self.tenant, [spec])
        return result.id, result.state

    def delivered(self) -> list[str]:
        return [t.id for frame in self.wire.of(Deliver) for t in frame.tasks]


@pytest.fixture
async def built(rt: Runtime) -> AsyncIterator[Built]:
    built = Built(rt)
    yield built
    await built.pauses.stop()
    if built.conn is not None:
        await built.conn.close()


async def test_a_submit_to_an_idle_worker_is_leased_in_its_commit_and_pushed_without_a_round(
    built: Built, rt: Runtime
) -> None:
    conn = await built.connect(slots=2)
    rounds = built.dispatcher.rounds

    task, state = await built.submit()

    assert state == RUNNING  # the answer says what the store holds
    stored = await rt.store.get_task(built.tenant, task)
    assert stored is not None and (stored.state, stored.lease_owner, stored.attempt) == (
        RUNNING, "w1", 1,
    )  # fmt: skip
    await until(lambda: built.delivered() == [task])
    assert conn.inflight.keys() == {task} and conn.reserved == 0
    assert built.dispatcher.rounds == rounds  # no round claimed it
    assert built.direct.dispatched == 1
    assert built.queues.empty[(built.tenant, (FN,))] == built.queues.generation[built.tenant]


async def test_with_a_backlog_a_submit_waits_its_turn_in_priority_and_fair_order(
    built: Built, rt: Runtime
) -> None:
    conn = await built.connect(slots=1)
    first, _ = await built.submit()  # direct: the slot was idle
    waiting, state = await built.submit(priority=0)  # no free slot: it queues
    assert state == READY
    conn.take(first, 1)  # the first ends: its slot is free, the backlog is not empty

    late, state = await built.submit(priority=0)  # must not go before `waiting`
    assert state == READY
    assert await built.dispatcher.dispatch_round() == 1
    await until(lambda: built.delivered() == [first, waiting])

    conn.take(waiting, 1)
    urgent, state = await built.submit(priority=9)  # `late` still waits: no direct
    assert state == READY
    assert await built.dispatcher.dispatch_round() == 1
    await until(lambda: built.delivered() == [first, waiting, urgent])  # priority first
    assert await state_of(rt, built.tenant, late) == READY
    assert built.direct.dispatched == 1


@pytest.mark.parametrize(
    "setting",
    [
        "function rate",
        "function concurrency",
        "tenant quota",
        "pause",
        "aimd",
        "memory",
        "switched off",
    ],
)
async def test_whatever_decides_how_many_may_start_keeps_the_task_for_a_round(
    built: Built, rt: Runtime, setting: str
) -> None:
    config: dict[str, object] = {
        "function rate": {"rate": 100.0},
        "function concurrency": {"max_concurrency": 5},
        "memory": {"memory_mb": 512},  # on a worker that offers its memory: a round fits it
    }.get(setting, {})
    if setting == "switched off":
        built.rt = with_settings(rt, direct_dispatch=False)
        built.dispatcher._rt = built.intake._rt = built.direct._rt = built.rt
    conn = await built.connect(slots=4, **config)
    if setting == "memory":
        conn.memory_mb = 4096
    if setting == "tenant quota":
        await built.quotas.set(built.tenant, TenantQuota(max_concurrency=10))
    if setting == "pause":
        await built.pauses.pause(built.tenant, Selector(function=[FN]))
    if setting == "aimd":
        built.adaptive.limits[(built.tenant, FN)] = _Room(2)  # type: ignore[assignment]
    assert await built.dispatcher.dispatch_round() == 0  # idle: the queue found empty

    _, state = await built.submit()

    assert state == (PAUSED if setting == "pause" else READY)
    assert built.direct.dispatched == 0
    assert built.delivered() == []


async def test_a_submit_that_fails_gives_its_reserved_slots_back(
    built: Built, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await built.connect(slots=2)

    async def broken(*args: object) -> None:
        raise OSError("the disk is gone")

    monkeypatch.setattr(rt.store, "submit_leased", broken)
    with pytest.raises(OSError, match="disk"):
        await built.submit()
    assert conn.reserved == 0 and conn.free == 2


class _Room:
    """An AIMD limit with room for `n` (engine/adaptive.py's limits answer room(now))."""

    def __init__(self, n: int) -> None:
        self.n = n

    def room(self, now: float) -> int:
        return self.n


async def test_delayed_tasks_an_idle_worker_may_take_are_leased_as_they_fall_due(
    built: Built, rt: Runtime, clock: FakeClock
) -> None:
    conn = await built.connect(slots=2)
    low, state = await built.submit(priority=1, delay=5)
    high, _ = await built.submit(priority=8, delay=5)
    third, _ = await built.submit(priority=5, delay=5)
    assert state == SCHEDULED
    rounds = built.dispatcher.rounds

    clock.advance(5)
    assert await built.delays.fire_due() == 3

    await until(lambda: built.delivered() == [high, third])  # two slots, claim order
    assert await state_of(rt, built.tenant, low) == READY  # promoted: a round's to place
    assert built.dispatcher.rounds == rounds and built.direct.dispatched == 2
    stored = await rt.store.get_task(built.tenant, high)
    assert stored is not None and (stored.state, stored.lease_owner) == (RUNNING, "w1")
    assert conn.reserved == 0


async def test_a_delayed_task_is_leased_ahead_to_an_idle_worker_that_waits_for_its_time(
    built: Built, rt: Runtime, clock: FakeClock
) -> None:
    conn = await built.connect(slots=2)
    conn.protocol = 2  # it honours start_at
    task, _ = await built.submit(delay=5)
    stored = await rt.store.get_task(built.tenant, task)
    assert stored is not None
    lead = rt.settings.delay_lead_s

    clock.advance(5 - lead * 1.5)
    assert await built.delays.fire_due() == 0  # not yet within the lead
    clock.advance(lead)  # due in half the lead
    assert await built.delays.fire_due() == 1

    await until(lambda: built.delivered() == [task])
    (frame,) = [t for f in built.wire.of(Deliver) for t in f.tasks]
    assert frame.start_at == pytest.approx(stored.run_at) and frame.start_at > clock.now()
    assert await state_of(rt, built.tenant, task) == RUNNING
    assert built.direct.dispatched == 1 and conn.reserved == 0


async def test_a_delayed_task_goes_no_earlier_than_its_time_to_an_older_worker_or_a_queue(
    built: Built, rt: Runtime, clock: FakeClock
) -> None:
    conn = await built.connect(slots=1)  # protocol 1: it would start the task at once
    old, _ = await built.submit(delay=5)
    lead = rt.settings.delay_lead_s

    clock.advance(5 - lead / 2)
    assert await built.delays.fire_due() == 0
    assert await state_of(rt, built.tenant, old) == SCHEDULED
    clock.advance(lead / 2)
    assert await built.delays.fire_due() == 1
    await until(lambda: built.delivered() == [old])

    conn.protocol = 2  # now busy (its one slot holds `old`): nobody may take it early
    queued, _ = await built.submit(delay=5)
    clock.advance(5 - lead / 2)
    assert await built.delays.fire_due() == 0
    assert await state_of(rt, built.tenant, queued) == SCHEDULED  # not ready before its time
    clock.advance(lead / 2)
    assert await built.delays.fire_due() == 1
    assert await state_of(rt, built.tenant, queued) == READY


async def test_delayed_tasks_falling_due_behind_a_backlog_wait_their_turn(
    built: Built, rt: Runtime, clock: FakeClock
) -> None:
    conn = await built.connect(slots=1)
    first, _ = await built.submit()  # direct: the one slot
    waiting, _ = await built.submit()  # queued behind it
    due, _ = await built.submit(delay=5)
    conn.take(first, 1)  # a slot frees; `waiting` is still ready

    clock.advance(5)
    assert await built.delays.fire_due() == 1

    assert await state_of(rt, built.tenant, due) == READY  # promoted, not leased
    assert await built.dispatcher.dispatch_round() == 1
    await until(lambda: built.delivered() == [first, waiting])
    assert built.direct.dispatched == 1


async def test_a_delayed_task_fired_while_a_round_claims_is_still_leased_ahead(
    built: Built, rt: Runtime, clock: FakeClock
) -> None:
    conn = await built.connect(slots=2)
    conn.protocol = 2
    task, _ = await built.submit(delay=5)
    lead = rt.settings.delay_lead_s
    clock.advance(5 - lead)  # due in a lead: it fires now

    # The safety net's round is claiming for the worker: its queue is looked at again
    # and its free slots are held until the store answers.
    built.queues.forget()
    conn.reserved = conn.free
    assert await built.delays.fire_due() == 0
    assert await state_of(rt, built.tenant, task) == SCHEDULED

    conn.reserved = 0  # the round found nothing: the worker is idle again
    assert await built.dispatcher.dispatch_round() == 0
    clock.advance(lead / 2)  # still ahead of its time
    assert await built.delays.fire_due() == 1
    await until(lambda: built.delivered() == [task])
    (frame,) = [t for f in built.wire.of(Deliver) for t in f.tasks]
    assert frame.start_at is not None and frame.start_at > clock.now()


async def test_the_safety_nets_round_leaves_an_idle_workers_slots_to_direct_dispatch(
    built: Built, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await built.connect(slots=4)
    queue = (built.tenant, (FN,))

    # Once a second the safety net looks again. The queue known empty stays so, and its
    # round claims one slot to probe it, not all four: a submit that arrives while that
    # round waits on the store still finds idle slots and is leased in its own commit
    # (forgetting the mark and holding every slot sent it through a round, once a second).
    claim, held = rt.store.claim_tasks, asyncio.Event()

    async def slow_claim(*args: Any, **kwargs: Any) -> Any:
        await held.wait()  # the round's claim, on its way to the store
        return await claim(*args, **kwargs)

    monkeypatch.setattr(rt.store, "claim_tasks", slow_claim)
    rounds = built.dispatcher.rounds
    probing = asyncio.create_task(built.dispatcher.dispatch_round(probe=True))
    await until(lambda: conn.reserved == PROBE_SLOTS)  # one slot of four held by the probe
    assert built.queues.empty.get(queue) == built.queues.generation[built.tenant]
    task, state = await built.submit()
    assert state == RUNNING
    await until(lambda: built.delivered() == [task])

    held.set()
    assert await probing == 0  # nothing was missed
    assert built.dispatcher.rounds == rounds + 1 and conn.reserved == 0  # it did look
    assert built.queues.empty.get(queue) == built.queues.generation[built.tenant]


async def test_the_safety_nets_probe_finds_missed_work_and_the_next_round_takes_the_rest(
    built: Built, rt: Runtime
) -> None:
    await built.connect(slots=4)
    queue = (built.tenant, (FN,))
    config = built.functions.cached_of(built.tenant)[FN]
    # Stored without a wake-up (as if one was lost): the queue still looks empty.
    missed = [await make_task(rt, built.tenant, config) for _ in range(3)]
    assert built.queues.empty.get(queue) == built.queues.generation[built.tenant]

    assert await built.dispatcher.dispatch_round(probe=True) == PROBE_SLOTS
    # Found: the mark is gone, so direct dispatch stops and the next round claims fully.
    assert queue not in built.queues.empty and built.queues.woken.is_set()
    task, state = await built.submit()
    assert state == READY  # queued behind the missed ones, in fair order
    assert await built.dispatcher.dispatch_round() == 3
    await until(lambda: built.delivered() == [*missed, task])


async def test_a_probe_with_no_free_slot_forgets_the_mark_so_missed_work_runs_first(
    built: Built, rt: Runtime
) -> None:
    conn = await built.connect(slots=1)
    first, _ = await built.submit()  # direct: the one slot is busy now
    queue = (built.tenant, (FN,))
    config = built.functions.cached_of(built.tenant)[FN]
    missed = await make_task(rt, built.tenant, config)  # stored, its wake-up lost

    assert await built.dispatcher.dispatch_round(probe=True) == 0  # no slot to probe with
    assert queue not in built.queues.empty  # not looked at, so not known empty either

    conn.take(first, 1)  # the slot frees
    _later, state = await built.submit()
    assert state == READY  # not leased ahead of the older, missed task
    assert await built.dispatcher.dispatch_round() == 1
    await until(lambda: built.delivered() == [first, missed])


async def test_without_direct_dispatch_the_safety_net_looks_at_every_queue_fully(
    rt: Runtime,
) -> None:
    built = Built(with_settings(rt, direct_dispatch=False))
    try:
        await built.connect(slots=4)
        queue = (built.tenant, (FN,))
        config = built.functions.cached_of(built.tenant)[FN]
        missed = [await make_task(rt, built.tenant, config) for _ in range(3)]

        # No direct dispatch to keep the idle slots open for: no probe, a full claim.
        assert await built.dispatcher.dispatch_round(probe=True) == 3
        await until(lambda: built.delivered() == missed)
        assert built.queues.empty.get(queue) == built.queues.generation[built.tenant]
    finally:
        await built.pauses.stop()
        if built.conn is not None:
            await built.conn.close()
