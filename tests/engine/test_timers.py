"""The timers alone: a step at a time on the fake clock, or each job on its own beat
(engine/timers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

import pytest

from sluice.clock import FakeClock
from sluice.engine.runtime import Runtime
from sluice.engine.timers import LEADER_LEASE, LEADER_RENEW_S, Timers
from tests.engine.conftest import settle, until


class Beats:
    """Jobs that record when they ran (on the fake monotonic clock)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.ran: list[tuple[str, float]] = []

    def job(self, name: str) -> object:
        async def tick() -> None:
            self.ran.append((name, self.clock.monotonic()))

        return tick

    def of(self, name: str) -> list[float]:
        return [at for n, at in self.ran if n == name]


async def test_a_step_runs_exactly_the_jobs_that_are_due(rt: Runtime, clock: FakeClock) -> None:
    timers, beats = Timers(rt), Beats(clock)
    timers.every("fast", 1.0, beats.job("fast"))
    timers.every("slow", 3.0, beats.job("slow"), first_after=2.0)

    assert await timers.step() == 1  # fast; slow and the lease come later
    assert await timers.step() == 0  # nothing is due twice at one time
    clock.advance(1.0)
    assert await timers.step() == 1
    clock.advance(1.0)
    assert await timers.step() == 3  # the lease renewal, fast, slow

    assert beats.ran == [("fast", 0.0), ("fast", 1.0), ("fast", 2.0), ("slow", 2.0)]
    assert timers.leader  # the lease job took the lease on its beat


async def test_intervals_are_measured_from_when_a_job_ran_on_the_fake_clock(
    rt: Runtime, clock: FakeClock
) -> None:
    timers, beats = Timers(rt), Beats(clock)
    timers.every("job", 1.0, beats.job("job"))
    await timers.step()

    clock.advance(2.5)  # two beats late: it runs once, not once per missed beat
    await timers.step()
    await timers.step()
    clock.advance(0.9)
    await timers.step()
    clock.advance(0.1)
    await timers.step()

    assert beats.of("job") == [0.0, 2.5, 3.5]


async def test_lead_only_jobs_run_only_while_this_node_holds_the_timers_lease(
    rt: Runtime, clock: FakeClock
) -> None:
    timers, beats = Timers(rt), Beats(clock)
    timers.every("reap", 1.0, beats.job("reap"), lead=True)
    timers.every("renew", 1.0, beats.job("renew"))
    assert await rt.store.acquire_lease(LEADER_LEASE, "node-b", 10.0)

    await timers.lead_once()
    await timers.step()
    assert not timers.leader
    assert beats.ran == [("renew", 0.0)]

    # node-b's lease runs out (on the database's clock: a negative ttl, store/base.py);
    # this node takes it on its next renewal beat, and the leader's jobs run from then.
    assert await rt.store.acquire_lease(LEADER_LEASE, "node-b", -1.0)
    clock.advance(LEADER_RENEW_S)
    await timers.step()  # the lease job comes first: the leader's jobs run in this step
    assert timers.leader
    assert beats.of("reap") == [LEADER_RENEW_S]

    await timers.step_down()
    assert not timers.leader
    assert await rt.store.acquire_lease(LEADER_LEASE, "node-b", 10.0)  # handed back


async def test_run_keeps_each_job_on_its_beat_and_a_stuck_job_holds_up_no_other(
    rt: Runtime, clock: FakeClock
) -> None:
    timers, beats = Timers(rt), Beats(clock)
    stuck = asyncio.Event()

    async def purge() -> None:
        beats.ran.append(("purge", clock.monotonic()))
        await stuck.wait()  # a big purge, far slower than the beats

    timers.every("purge", 1.0, purge, lead=True)
    timers.every("renew", 1.0, beats.job("renew"))
    running = asyncio.create_task(timers.run())
    try:
        await until(lambda: len(beats.of("renew")) == 1)
        assert timers.leader  # a lone node leads from its first tick
        for _ in range(3):
            await until(lambda: clock.waiting >= 2)  # renew and the lease sleep again
            clock.advance(1.0)
        await until(lambda: len(beats.of("renew")) == 4)
        assert beats.of("renew") == [0.0, 1.0, 2.0, 3.0]
        assert beats.of("purge") == [0.0]
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_a_failing_job_is_logged_and_keeps_its_beat(
    rt: Runtime, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    timers, calls = Timers(rt), []

    def broken() -> None:
        calls.append(clock.monotonic())
        raise RuntimeError("boom")

    timers.every("broken", 1.0, broken)
    with caplog.at_level(logging.ERROR, logger="sluice.timers"):
        await timers.step()
        clock.advance(1.0)
        await timers.step()
    await settle()
    assert calls == [0.0, 1.0]
    assert caplog.text.count("timer broken failed") == 2


async def test_a_step_counts_only_the_jobs_that_ran(rt: Runtime, clock: FakeClock) -> None:
    timers, beats = Timers(rt), Beats(clock)
    timers.every("reap", 1.0, beats.job("reap"), lead=True)
    assert await rt.store.acquire_lease(LEADER_LEASE, "node-b", 10.0)
    await timers.lead_once()

    ran = await timers.step()

    assert beats.ran == []
    assert ran == 0


async def test_spread_jobs_of_one_interval_leave_each_others_beat_after_their_first_run(
    rt: Runtime, clock: FakeClock
) -> None:
    timers, beats = Timers(rt, spread=True), Beats(clock)
    names = [f"job-{i}" for i in range(8)]
    for name in names:
        timers.every(name, 1.0, beats.job(name))
    await timers.step()  # all at once, the first time
    assert all(beats.of(name) == [0.0] for name in names)

    for _ in range(400):  # 4 s, 10 ms at a time: each job's next beats
        clock.advance(0.01)
        await timers.step()
    for name in names:  # still once a second (late by at most a 10 ms step)
        ran = beats.of(name)
        assert len(ran) >= 4, ran
        assert all(0.99 < b - a < 1.02 for a, b in itertools.pairwise(ran[1:4])), ran
    # Apart: no two jobs' second runs within 50 ms of each other.
    seconds = sorted(beats.of(name)[1] for name in names)
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(seconds)), seconds
    assert seconds[-1] - seconds[0] > 0.5  # over the whole second, not bunched
