"""Dispatch across nodes alone: a worker's slots asked of the nodes holding partitions,
asks timed out on the fake clock, answers delivered, asks served (engine/asks.py).

Another node is only what it leaves in the shared store (its partition leases, the tasks
it claimed in the worker's name) and what it says on the bus (played by the test)."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest

from sluice.clock import FakeClock
from sluice.engine.adaptive import AdaptivePools
from sluice.engine.asks import AGAIN_S, ASK_TIMEOUT_S, BATCH_S, HOLD_S, Ask, Asks, Assigned
from sluice.engine.partitions import Partitions
from sluice.engine.queues import Queues
from sluice.engine.registry import Registry, Settling, WorkerConn
from sluice.engine.runtime import Runtime
from sluice.model import READY, RUNNING
from sluice.protocol import Deliver
from tests.engine.conftest import (
    FN,
    NODE,
    NoHeavyHitters,
    Wire,
    claim,
    claimed,
    heard,
    lower,
    make_function,
    make_task,
    make_tenant,
    state_of,
    until,
    worker,
)


class Built:
    def __init__(self, rt: Runtime) -> None:
        below = lower(rt)
        self.rt = rt
        self.queues: Queues = below.queues
        self.partitions: Partitions = below.partitions
        self.registry = Registry()
        adaptive = AdaptivePools(rt, self.registry, below.functions, self.queues)
        self.asks = Asks(rt, self.queues, self.registry, self.partitions, adaptive, Settling())
        self.wire = Wire()

    async def elsewhere(self) -> None:
        """node-b holds every partition; this node knows it (its balance found so)."""
        await Partitions(replace(self.rt, node_id="node-b"), lambda: None,
                         NoHeavyHitters()).balance()  # fmt: skip
        await self.partitions.balance()

    def worker(self, tenant: str) -> WorkerConn:
        conn = worker(self.rt, tenant, self.wire)
        self.registry.add(conn)
        return conn

    def asked(self) -> list[Ask]:
        return [msgspec.json.decode(a, type=Ask) for a in heard(self.rt, "ask")]


async def test_with_no_other_node_holding_partitions_a_workers_slots_are_all_here(
    rt: Runtime,
) -> None:
    built = Built(rt)
    await built.partitions.balance()
    conn = built.worker("acme")

    assert built.asks.plan(conn, 4, generation=0, local_empty=False) == 4
    assert heard(rt, "ask") == [] and conn.reserved == 0
    await conn.close()


async def test_a_workers_slots_are_asked_of_the_node_holding_its_partitions(
    rt: Runtime,
) -> None:
    built = Built(rt)
    await built.elsewhere()
    conn = built.worker("acme")

    assert built.asks.plan(conn, 4, generation=0, local_empty=False) == 0

    (ask,) = built.asked()
    assert (ask.to, ask.by, ask.tenant_id, ask.worker, ask.functions, ask.n) == (
        "node-b", NODE, "acme", "w1", (FN,), 4,
    )  # fmt: skip
    assert conn.reserved == 4  # promised to the ask until it is answered
    await conn.close()


async def test_an_ask_unanswered_in_time_frees_its_slots_and_its_node_is_asked_for_one(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    await built.elsewhere()
    conn = built.worker("acme")
    built.asks.plan(conn, 4, generation=0, local_empty=False)

    clock.advance(ASK_TIMEOUT_S - 0.1)
    assert built.asks.expire() is not None and conn.reserved == 4
    clock.advance(0.1)
    built.asks.expire()
    assert conn.reserved == 0

    built.asks.plan(conn, 4, generation=0, local_empty=False)
    assert [a.n for a in built.asked()] == [4, 1]  # suspect: one slot at a time
    await conn.close()


async def test_an_answer_is_read_back_from_the_store_and_delivered_to_the_worker(
    rt: Runtime,
) -> None:
    built = Built(rt)
    await built.elsewhere()
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    for _ in range(3):
        await make_task(rt, tenant, send)
    conn = built.worker(tenant)
    built.asks.plan(conn, 4, generation=0, local_empty=False)
    (ask,) = built.asked()
    ids = [t.id for t in await claim(rt, tenant, "w1", n=3)]  # node-b claims, in w1's name

    built.asks.on_assigned(msgspec.json.encode(Assigned(ask.id, NODE, ids, False)).decode())

    await until(lambda: set(conn.inflight) == set(ids))
    (frame,) = await until(lambda: built.wire.of(Deliver))
    assert sorted(t.id for t in frame.tasks) == sorted(ids)
    assert conn.reserved == 0
    # Short, and not for limits: node-b has nothing more for this queue at generation 0.
    assert built.asks.plan(conn, 1, generation=0, local_empty=False) == 0
    assert len(built.asked()) == 1
    built.asks.plan(conn, 1, generation=1, local_empty=False)
    assert len(built.asked()) == 2
    await conn.close()


async def test_after_an_ask_timed_out_what_was_claimed_for_the_worker_is_handed_back(
    rt: Runtime, clock: FakeClock
) -> None:
    built = Built(rt)
    await built.elsewhere()
    tenant = await make_tenant(rt)
    task = await make_task(rt, tenant, await make_function(rt, tenant))
    conn = built.worker(tenant)
    built.asks.plan(conn, 1, generation=0, local_empty=False)
    await claim(rt, tenant, "w1")  # node-b claimed it, then died before answering
    clock.advance(ASK_TIMEOUT_S)
    built.asks.expire()
    generation = built.queues.generation[tenant]

    await built.asks.reconcile()

    assert await state_of(rt, tenant, task) == READY
    assert built.queues.generation[tenant] == generation + 1
    await conn.close()


async def test_an_ask_for_this_node_is_served_by_a_round_and_answered(rt: Runtime) -> None:
    built = Built(rt)
    for to in ("node-b", NODE):
        ask = Ask(f"ask-{to}", to, "node-c", "acme", "w9", (FN,), 2, {})
        built.asks.on_ask(msgspec.json.encode(ask).decode())

    (remote,) = built.asks.take()  # the ask to node-b is not this node's
    assert built.queues.woken.is_set()
    assert (remote.tenant_id, remote.worker_id, remote.free) == ("acme", "w9", 2)
    remote.tasks = []  # the round found nothing: answered at once, not held
    built.asks.settle([remote])

    (answer,) = [msgspec.json.decode(a, type=Assigned) for a in heard(rt, "assigned")]
    assert (answer.id, answer.to, answer.ids, answer.more) == ("ask-node-a", "node-c", [], False)
    assert built.asks.take() == []


async def asked_with_its_window_open(rt: Runtime, tasks: int) -> tuple[Built, str, WorkerConn, Ask]:
    """node-b holds every partition and has `tasks` ready; this node's worker of 4 slots,
    whose credit holds 4 ahead, is asked for there."""
    built = Built(rt)
    await built.elsewhere()
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    for _ in range(tasks):
        await make_task(rt, tenant, send)
    conn = built.worker(tenant)
    conn.ahead = 4
    built.asks.plan(conn, conn.free, generation=0, local_empty=False)
    (ask,) = built.asked()
    return built, tenant, conn, ask


async def test_an_answer_brings_every_task_its_ask_reserved_though_the_window_closed(
    rt: Runtime,
) -> None:
    """Asked while its prefetch window was open, answered after it closed: every task
    claimed for the ask is delivered (they were claimed with a rate's starts; handing
    them back would waste those starts)."""
    built, tenant, conn, ask = await asked_with_its_window_open(rt, tasks=6)
    assert ask.n == 8
    ids = [t.id for t in await claim(rt, tenant, "w1", n=6)]  # node-b claims, in w1's name
    conn.ahead = 0  # the window closed before the answer came

    built.asks.on_assigned(msgspec.json.encode(Assigned(ask.id, NODE, ids, True)).decode())

    await until(lambda: set(conn.inflight) == set(ids))
    assert {await state_of(rt, tenant, i) for i in ids} == {RUNNING}  # none handed back
    assert conn.reserved == 0
    await conn.close()


async def test_an_ask_held_by_limits_is_answered_soon_once_it_holds_tasks(
    rt: Runtime, clock: FakeClock
) -> None:
    """Held short by a rate, an ask stays for later rounds: up to HOLD_S while it holds
    nothing, BATCH_S once it holds tasks (they go at the rate's pace, not in a burst)."""
    built = Built(rt)
    ask = Ask("ask-1", NODE, "node-c", "acme", "w9", (FN,), 8, {})
    built.asks.on_ask(msgspec.json.encode(ask).decode())
    (remote,) = built.asks.take()
    remote.more = True  # the round's claim was short because of the rate

    built.asks.settle([remote])  # holds nothing: kept
    assert heard(rt, "assigned") == []
    assert built.asks.expire() == pytest.approx(HOLD_S)  # the dispatcher looks again then
    clock.advance(BATCH_S / 2)
    assert built.asks.take() == [remote]
    remote.deliver([claimed("acme", "t1")])  # a later round claimed one for it
    built.asks.settle([remote])
    assert heard(rt, "assigned") == []  # BATCH_S since it arrived is not past yet
    assert built.asks.expire() == pytest.approx(BATCH_S / 2)
    clock.advance(BATCH_S / 2)
    assert built.asks.take() == [remote]
    built.asks.settle([remote])

    (answer,) = [msgspec.json.decode(a, type=Assigned) for a in heard(rt, "assigned")]
    assert (answer.ids, answer.more) == (["t1"], True)
    assert built.asks.take() == []


async def test_an_ask_carries_the_tenants_a_pool_workers_headroom_leaves_out(
    rt: Runtime,
) -> None:
    built = Built(rt)
    await built.elsewhere()
    conn = built.worker("acme")
    built.asks.plan(conn, 4, generation=0, local_empty=True, flooding=frozenset({"b", "a"}))

    (ask,) = built.asked()
    assert ask.flooding == ("a", "b")
    await conn.close()


async def test_an_answer_for_a_worker_that_began_to_drain_meanwhile_is_handed_back(
    rt: Runtime,
) -> None:
    """Asked while it took tasks, answered after it said it is stopping: nothing goes to
    it (its slots are no longer offered, nor its window); the tasks are ready again."""
    built, tenant, conn, ask = await asked_with_its_window_open(rt, tasks=2)
    ids = [t.id for t in await claim(rt, tenant, "w1", n=2)]
    conn.slots, conn.ahead, conn.draining = 0, 0, True  # its Credit(0, draining)

    built.asks.on_assigned(msgspec.json.encode(Assigned(ask.id, NODE, ids, False)).decode())

    async def handed_back() -> bool:
        return all([await state_of(rt, tenant, i) == READY for i in ids])

    await until(handed_back)
    assert conn.inflight == {} and conn.reserved == 0
    await conn.close()


async def test_a_headroom_ask_answered_short_is_made_again_soon_not_marked_empty(
    rt: Runtime, clock: FakeClock
) -> None:
    """Short because it left the heavy tenants out, not because the node has nothing:
    the node is asked again after AGAIN_S (the tenants left out may have dropped below
    their share by then, with no new work to say so), not only after new work."""
    built = Built(rt)
    await built.elsewhere()
    conn = built.worker("acme")
    built.asks.plan(conn, 2, generation=0, local_empty=True, flooding=frozenset({"a"}))
    (ask,) = built.asked()

    built.asks.on_assigned(msgspec.json.encode(Assigned(ask.id, NODE, [], False)).decode())

    assert built.asks.plan(conn, 2, generation=0, local_empty=True) == 0
    assert len(built.asked()) == 1  # not at once
    clock.advance(AGAIN_S)
    built.asks.expire()
    built.asks.plan(conn, 2, generation=0, local_empty=True)
    assert len(built.asked()) == 2  # and not only at the next generation
    await conn.close()
