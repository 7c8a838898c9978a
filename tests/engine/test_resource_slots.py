"""Resource-aware slots (docs/isolation.md): a worker that offers memory is sent only the
tasks whose declared `memory_mb` fits, while the others keep flowing (engine/dispatcher.py,
engine/registry.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from sluice.clock import FakeClock
from sluice.contract import FunctionConfig
from sluice.engine.asks import BATCH_S, Ask, Assigned
from sluice.engine.registry import WorkerConn
from sluice.engine.runtime import Runtime
from sluice.protocol import Deliver
from tests.engine.conftest import FN, NODE, Wire, heard, make_task, make_tenant
from tests.engine.test_asks import Built as AsksBuilt
from tests.engine.test_dispatcher import Built

HEAVY = FunctionConfig(name="report", memory_mb=1024)
LIGHT = FunctionConfig(name="receipt")
CPU = FunctionConfig(name="crunch", cpu=1.0)


class Fitted(Built):
    async def offer(self, slots: int, memory_mb: float | None, cpu: float | None) -> WorkerConn:
        self.tenant = await make_tenant(self.rt)
        await self.below.functions.register(self.tenant, [HEAVY, LIGHT, CPU])
        self.conn = WorkerConn(
            self.tenant, "w1", slots, ("crunch", "receipt", "report"), self.wire.send,
            self.rt.clock.now(), memory_mb=memory_mb, cpu=cpu,
        )  # fmt: skip
        self.registry.add(self.conn)
        return self.conn

    async def tasks(self, function: FunctionConfig, n: int) -> list[str]:
        return [await make_task(self.rt, self.tenant, function) for _ in range(n)]

    def sent(self) -> dict[str, str]:
        return {t.id: t.function for frame in self.wire.of(Deliver) for t in frame.tasks}


@pytest.fixture
async def fitted(rt: Runtime) -> AsyncIterator[Fitted]:
    built = Fitted(rt)
    built.wire = Wire()
    yield built
    if built.conn is not None:
        await built.conn.close()


def _count(conn: WorkerConn, function: str) -> int:
    return sum(1 for t in conn.inflight.values() if t is not None and t.function == function)


async def test_only_what_fits_the_offered_memory_runs_and_the_rest_fills_the_slots(
    fitted: Fitted,
) -> None:
    conn = await fitted.offer(slots=8, memory_mb=3072, cpu=None)
    heavy = await fitted.tasks(HEAVY, 5)
    await fitted.tasks(LIGHT, 5)

    assert await fitted.dispatcher.dispatch_round() == 8

    assert _count(conn, "report") == 3  # 3 GiB offered, 1 GiB each
    assert _count(conn, "receipt") == 5  # the light ones were not held back
    first = next(t for t in heavy if t in conn.inflight)
    conn.take(first, 1)  # its result came: 1 GiB free again
    fitted.queues.notify(fitted.tenant)
    assert await fitted.dispatcher.dispatch_round() == 1
    assert _count(conn, "report") == 3


async def test_a_worker_that_offers_nothing_runs_declared_tasks_up_to_its_slots(
    fitted: Fitted,
) -> None:
    conn = await fitted.offer(slots=4, memory_mb=None, cpu=None)
    await fitted.tasks(HEAVY, 6)

    assert await fitted.dispatcher.dispatch_round() == 4
    assert _count(conn, "report") == 4


async def test_cpu_weights_fit_the_offered_cpus_like_memory(fitted: Fitted) -> None:
    conn = await fitted.offer(slots=8, memory_mb=None, cpu=2)
    await fitted.tasks(CPU, 5)
    await fitted.tasks(HEAVY, 2)  # memory is not offered: not bounded

    assert await fitted.dispatcher.dispatch_round() == 4
    assert (_count(conn, "crunch"), _count(conn, "report")) == (2, 2)


async def test_tasks_held_since_a_reconnect_count_against_the_offer(fitted: Fitted) -> None:
    conn = await fitted.offer(slots=8, memory_mb=2048, cpu=None)
    conn.inflight["held-1"] = None  # named in the hello's running, with its function
    conn.held_functions["held-1"] = "report"
    await fitted.tasks(HEAVY, 3)

    assert await fitted.dispatcher.dispatch_round() == 1
    assert _count(conn, "report") == 1


async def test_an_ask_of_another_node_carries_what_fits_and_counts_against_the_offer(
    rt: Runtime,
) -> None:
    built = AsksBuilt(rt)
    await built.elsewhere()
    conn = built.worker("acme")
    conn.memory_mb = 3072
    conn.demands = {FN: (1024.0, 0.0)}
    conn.inflight["running-1"] = None
    conn.held_functions["running-1"] = FN  # 1 GiB taken: 2 GiB left

    assert built.asks.plan(conn, 4, generation=0, local_empty=False) == 0

    (ask,) = built.asked()
    assert ask.caps == {FN: 2}  # node-b may claim at most what fits
    assert ask.fits == {FN: 2}  # and knows the cap is the worker's size, not an AIMD room
    assert built.asks.promised(conn) == {FN: 2}
    assert conn.left(built.asks.promised(conn))[0] == 0  # nothing more fits here
    await conn.close()


async def test_a_declared_function_found_drained_is_not_claimed_again_until_work_comes(
    fitted: Fitted,
) -> None:
    conn = await fitted.offer(slots=8, memory_mb=3072, cpu=None)
    (first,) = await fitted.tasks(HEAVY, 1)
    assert await fitted.dispatcher.dispatch_round() == 1
    assert (fitted.tenant, "report") in fitted.queues.drained

    later = await make_task(fitted.rt, fitted.tenant, HEAVY)  # stored, nobody told
    assert await fitted.dispatcher.dispatch_round() == 0
    fitted.queues.notify(fitted.tenant, functions=["report"])
    assert await fitted.dispatcher.dispatch_round() == 1
    assert {first, later} <= conn.inflight.keys()


@pytest.mark.parametrize("sized", [True, False])
async def test_a_cap_from_another_nodes_worker_size_is_not_held_as_an_aimd_limit(
    rt: Runtime, clock: FakeClock, sized: bool
) -> None:
    """Serving another node's ask, this node claims at most each function's cap, over
    all the rounds the ask is kept for. A cap
    that is what fits of that worker's memory is its size: the claim is short and the
    ask is made again (more), but no AIMD hold is marked (the waterfall would name an
    AIMD limit) and the function's AIMD limit is not told it held work back. A cap
    without a fit is an AIMD room, and is."""
    built = Built(rt)
    built.tenant = await make_tenant(rt)
    await built.below.functions.register(built.tenant, [HEAVY])
    for _ in range(3):
        await make_task(rt, built.tenant, HEAVY)
    fits = {"report": 1} if sized else {}
    ask = Ask("ask-1", NODE, "node-c", built.tenant, "w9", ("report",), 4, {"report": 1},
              (), fits)  # fmt: skip
    built.asks.on_ask(msgspec.json.encode(ask).decode())

    assert await built.dispatcher.dispatch_round() == 1
    clock.advance(BATCH_S)  # kept (held short by its cap) until it has waited BATCH_S
    assert await built.dispatcher.dispatch_round() == 0  # its cap is used up

    (answer,) = [msgspec.json.decode(a, type=Assigned) for a in heard(rt, "assigned")]
    assert len(answer.ids) == 1 and answer.more  # short by the cap, not by the queue
    key = (built.tenant, "report")
    assert (key in built.dispatcher._holds._open) is not sized
    assert (key in built.dispatcher._adaptive._backlog) is not sized
