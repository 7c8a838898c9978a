"""Headroom on a shared pool (policy/headroom.py, engine/dispatcher.py): while tenant A
floods the pool and tenant B is around, the pool's worker keeps its last free slot for
B, so B's task starts when it arrives instead of when one of A's ends; A alone gets
every slot; and a headroom claim that found nothing is not made again for A's submits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from sluice.contract import FunctionConfig
from sluice.engine.asks import Ask, Assigned
from sluice.engine.registry import WorkerConn
from sluice.engine.runtime import Runtime
from sluice.model import SHARED
from tests.engine.conftest import FN, NODE, Wire, heard, make_task, make_tenant, with_settings
from tests.engine.test_dispatcher import Built

FUNCTION = FunctionConfig(name=FN)


class Pool(Built):
    async def open(self, slots: int = 4) -> WorkerConn:
        self.a = await make_tenant(self.rt, "flood")
        self.b = await make_tenant(self.rt, "quiet")
        await self.below.functions.register(SHARED, [FUNCTION])  # the pool's function
        self.conn = WorkerConn(SHARED, "pool-1", slots, (FN,), self.wire.send,
                               self.rt.clock.now())  # fmt: skip
        self.registry.add(self.conn)
        return self.conn

    async def submit(self, tenant: str, n: int = 1) -> list[str]:
        ids = [await make_task(self.rt, tenant, FUNCTION) for _ in range(n)]
        self.queues.notify(tenant)
        return ids

    def running(self, tenant: str) -> int:
        assert self.conn is not None
        return sum(1 for t in self.conn.inflight.values() if t and t.tenant_id == tenant)

    def finish(self, tenant: str) -> None:
        """One of the tenant's running tasks ends (its result came)."""
        assert self.conn is not None
        task = next(t for t in self.conn.inflight.values() if t and t.tenant_id == tenant)
        self.conn.take(task.id, task.attempt)
        self.queues.wake()


async def pool_of(rt: Runtime) -> AsyncIterator[Pool]:
    built = Pool(rt)
    built.wire = Wire()
    yield built
    if built.conn is not None:
        await built.conn.close()


@pytest.fixture
async def pool(rt: Runtime) -> AsyncIterator[Pool]:
    async for built in pool_of(rt):
        yield built


@pytest.fixture
async def pool_without(rt: Runtime) -> AsyncIterator[Pool]:
    async for built in pool_of(with_settings(rt, shared_headroom=0)):
        yield built


async def test_a_quiet_tenant_beside_a_flood_starts_in_the_slot_kept_for_it(pool: Pool) -> None:
    await pool.open(slots=4)
    await pool.submit(pool.b)
    assert await pool.dispatcher.dispatch_round() == 1  # B ran a task: B is around
    pool.finish(pool.b)
    await pool.submit(pool.a, 20)
    # A is new to the pool, B ran on it lately: even A's first claim keeps a slot.
    assert await pool.dispatcher.dispatch_round() == 3

    # A is heavy (3 of 4 slots, a share is 2): the last slot is kept, A's backlog waits.
    assert await pool.dispatcher.dispatch_round() == 0
    assert pool.running(pool.a) == 3
    (quiet,) = await pool.submit(pool.b)
    assert await pool.dispatcher.dispatch_round() == 1
    assert quiet in pool.conn.inflight  # type: ignore[union-attr]

    # Once B's task ends, A still does not take the last slot.
    pool.finish(pool.b)
    assert await pool.dispatcher.dispatch_round() == 0
    # Two of A's end: A runs 1 of 4 and takes 2 more, in fair order; one stays kept.
    pool.finish(pool.a)
    pool.finish(pool.a)
    assert await pool.dispatcher.dispatch_round() == 2
    assert await pool.dispatcher.dispatch_round() == 0
    assert pool.running(pool.a) == 3


async def test_without_headroom_the_flood_takes_every_slot(pool_without: Pool) -> None:
    pool = pool_without
    await pool.open(slots=4)
    await pool.submit(pool.b)
    assert await pool.dispatcher.dispatch_round() == 1
    pool.finish(pool.b)
    await pool.submit(pool.a, 20)
    assert await pool.dispatcher.dispatch_round() == 4
    pool.finish(pool.a)
    assert await pool.dispatcher.dispatch_round() == 1
    assert pool.running(pool.a) == 4


async def test_a_flood_alone_gets_every_slot(pool: Pool) -> None:
    await pool.open(slots=4)
    await pool.submit(pool.b)
    assert await pool.dispatcher.dispatch_round() == 1
    pool.finish(pool.b)
    pool.rt.clock.advance(31.0)  # type: ignore[attr-defined]  # B has not been seen since
    pool.conn.last_seen = pool.rt.clock.now()  # type: ignore[union-attr]  # (its heartbeat)
    await pool.submit(pool.a, 20)
    assert await pool.dispatcher.dispatch_round() == 4
    for _ in range(3):
        pool.finish(pool.a)
        assert await pool.dispatcher.dispatch_round() == 1
        assert pool.running(pool.a) == 4


async def test_a_headroom_claim_that_found_nothing_waits_for_another_tenants_work(
    pool: Pool,
) -> None:
    await pool.open(slots=4)
    await pool.submit(pool.b)
    assert await pool.dispatcher.dispatch_round() == 1
    pool.finish(pool.b)
    await pool.submit(pool.a, 20)
    assert await pool.dispatcher.dispatch_round() == 3
    assert await pool.dispatcher.dispatch_round() == 0
    key = (SHARED, (FN,))
    heavy = frozenset({pool.a})

    await pool.submit(pool.a, 5)  # more of A: no claim leaving A out is worth making
    assert pool.queues.light_idle(key, heavy)
    await pool.submit(pool.b)
    assert not pool.queues.light_idle(key, heavy)
    assert await pool.dispatcher.dispatch_round() == 1
    assert pool.running(pool.b) == 1


async def test_a_tenant_alone_on_the_pool_refills_every_slot_after_a_pause(pool: Pool) -> None:
    await pool.open(slots=4)
    await pool.submit(pool.a, 4)
    assert await pool.dispatcher.dispatch_round() == 4
    for _ in range(4):
        pool.finish(pool.a)
    await pool.submit(pool.a, 8)  # the pool ran only A lately, and the work is A's
    assert await pool.dispatcher.dispatch_round() == 4


@pytest.mark.parametrize("flooding", [True, False])
async def test_an_ask_naming_the_heavy_tenants_claims_here_only_for_the_others(
    pool: Pool, flooding: bool
) -> None:
    """Another node's pool worker keeping headroom sends, with its ask, the tenants its
    claims leave out: the claim this node makes for it leaves them out too (without
    them, the flood's tasks, first in fair order, would fill the kept slot)."""
    await pool.open(slots=4)
    assert pool.conn is not None
    pool.registry.remove(pool.conn)  # only the other node's worker asks this round
    flood = await pool.submit(pool.a, 3)
    quiet = await pool.submit(pool.b, 1)
    heavy = (pool.a,) if flooding else ()
    ask = Ask("ask-1", NODE, "node-c", SHARED, "pool-9", (FN,), 2, {}, heavy)
    pool.asks.on_ask(msgspec.json.encode(ask).decode())

    await pool.dispatcher.dispatch_round()

    (answer,) = [msgspec.json.decode(a, type=Assigned) for a in heard(pool.rt, "assigned")]
    if flooding:
        assert answer.ids == quiet
    else:
        assert set(answer.ids) & set(flood) and len(answer.ids) == 2
