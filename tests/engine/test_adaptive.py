"""AIMD for worker pools alone: a throttle starts a pool's limit, Retry-After pauses it
on the fake clock, idle pools are let go (engine/adaptive.py)."""

from __future__ import annotations

from sluice.clock import FakeClock
from sluice.engine.adaptive import IDLE_S, RECOUNT_TICKS, AdaptivePools
from sluice.engine.queues import Queues
from sluice.engine.registry import TARGET_PREFIX, Registry, WorkerConn
from sluice.engine.runtime import Runtime
from sluice.model import ClaimedTask
from sluice.protocol import ResultItem
from tests.engine.conftest import FN, Wire, claimed, lower

KEY = ("acme", FN)


class Pools:
    def __init__(self, rt: Runtime, worker_id: str = "w1", holding: int = 4) -> None:
        below = lower(rt)
        self.queues: Queues = below.queues
        self.registry = Registry()
        self.adaptive = AdaptivePools(rt, self.registry, below.functions, self.queues)
        self.conn = WorkerConn("acme", worker_id, 10, (FN,), Wire().send, rt.clock.now())
        self.registry.add(self.conn)
        self.tasks = [claimed("acme", f"t{i}") for i in range(holding)]
        self.conn.deliver(self.tasks)
        self.now = rt.clock.now

    def answer(self, outcome: str, n: int = 1, retry_after_s: float | None = None) -> None:
        """The next n held tasks come back, as Attempts hands them over."""
        held: list[ClaimedTask | None] = []
        items = []
        for task in [t for t in self.tasks if t.id in self.conn.inflight][:n]:
            held.append(self.conn.take(task.id, task.attempt))
            items.append(ResultItem(task.id, task.attempt, outcome, self.now(), self.now(),
                                    retry_after_s=retry_after_s))  # fmt: skip
        self.adaptive.answered(self.conn, items, held)


async def test_a_first_throttle_puts_the_pool_under_a_limit_of_what_was_in_flight(
    rt: Runtime,
) -> None:
    pools = Pools(rt, holding=4)
    assert pools.adaptive.rooms("acme", (FN,)) == {}  # no limit: nothing to count

    pools.answer("throttled")

    assert pools.adaptive.limits[KEY].limit == 4
    assert pools.adaptive.rooms("acme", (FN,)) == {FN: 1}  # 3 still in flight
    await pools.conn.close()


async def test_retry_after_pauses_the_pool_until_the_fake_clock_passes_it(
    rt: Runtime, clock: FakeClock
) -> None:
    pools = Pools(rt, holding=4)
    pools.answer("throttled", retry_after_s=2.0)

    assert pools.adaptive.rooms("acme", (FN,)) == {FN: 0}
    clock.advance(1.9)
    assert pools.adaptive.rooms("acme", (FN,)) == {FN: 0}
    clock.advance(0.2)
    assert pools.adaptive.rooms("acme", (FN,)) == {FN: 1}
    await pools.conn.close()


async def test_the_tick_after_a_pause_ends_wakes_the_dispatcher(
    rt: Runtime, clock: FakeClock
) -> None:
    pools = Pools(rt, holding=1)
    pools.answer("throttled", retry_after_s=2.0)  # nothing left in flight to answer
    pools.queues.woken.clear()

    clock.advance(1.9)
    pools.adaptive.tick()
    assert not pools.queues.woken.is_set()
    clock.advance(0.2)
    pools.adaptive.tick()

    assert pools.queues.woken.is_set()  # room again: the dispatcher looks
    await pools.conn.close()


async def test_five_throttles_in_a_window_cut_the_limit_by_a_third(rt: Runtime) -> None:
    pools = Pools(rt, holding=10)
    pools.adaptive.start(KEY, 10)
    pools.adaptive.sent("acme", pools.tasks)

    pools.answer("ok", n=2)
    pools.answer("throttled", n=5)

    assert pools.adaptive.limits[KEY].limit == 7
    assert pools.adaptive.limits[KEY].cuts == 1
    await pools.conn.close()


async def test_a_pool_with_no_throttle_for_idle_s_of_fake_time_is_let_go(
    rt: Runtime, clock: FakeClock
) -> None:
    pools = Pools(rt, holding=0)
    pools.adaptive.start(KEY, 10)
    pools.queues.woken.clear()

    clock.advance(IDLE_S - 0.1)
    pools.adaptive.tick()
    assert KEY in pools.adaptive.limits
    clock.advance(0.1)
    pools.adaptive.tick()

    assert pools.adaptive.limits == {}
    assert pools.queues.woken.is_set()
    assert pools.adaptive.rooms("acme", (FN,)) == {}
    await pools.conn.close()


async def test_in_flight_is_recounted_from_what_the_workers_hold(rt: Runtime) -> None:
    pools = Pools(rt, holding=2)
    aimd = pools.adaptive.start(KEY, 10)
    aimd.sent(5)  # three of them were lost with a worker and never answered

    for _ in range(RECOUNT_TICKS):
        pools.adaptive.tick()

    assert aimd.inflight == 2
    await pools.conn.close()


async def test_an_http_targets_answers_are_left_to_its_own_limit(rt: Runtime) -> None:
    pools = Pools(rt, worker_id=TARGET_PREFIX + FN)

    pools.answer("throttled")

    assert pools.adaptive.limits == {}
    await pools.conn.close()
