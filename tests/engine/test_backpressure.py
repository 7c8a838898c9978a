"""Backpressure alone: the drain rate measured on the fake clock, overload judged from
the backlog, heavy tenants refused while it lasts (engine/backpressure.py)."""

from __future__ import annotations

import random

import pytest

from sluice.clock import FakeClock
from sluice.contract import FunctionConfig
from sluice.engine.backpressure import COUNT_STALE_S, DRAIN_EWMA, SATURATED_TICKS, Backpressure
from sluice.engine.partitions import Partitions
from sluice.engine.runtime import Runtime
from sluice.errors import TenantThrottled
from sluice.policy.backpressure import Backpressure as Policy
from tests.engine.conftest import FN, lower, make_function, make_task, make_tenant, with_settings


def backpressure(rt: Runtime, partitions: Partitions | None = None) -> Backpressure:
    below = lower(rt)
    policy = Policy(rt.clock.now(), random.Random(7), interval_s=1.0)
    return Backpressure(rt, below.quotas, partitions or below.partitions, policy)


def slow_counts(
    rt: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, seconds: list[float]
) -> list[float]:
    """The store's backlog count made to take seconds[i] on the fake clock at its i-th
    call (the last again after that); the list returned holds each call's duration."""
    counted = rt.store.ready_backlog
    calls: list[float] = []

    async def count() -> dict[int, int]:
        calls.append(seconds[min(len(calls), len(seconds) - 1)])
        clock.advance(calls[-1])
        return await counted()

    monkeypatch.setattr(rt.store, "ready_backlog", count)
    return calls


async def backlog(rt: Runtime, n: int) -> str:
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    for _ in range(n):
        await make_task(rt, tenant, send)
    return tenant


async def test_a_tick_measures_the_drain_rate_on_the_fake_clock_and_counts_the_backlog(
    rt: Runtime, clock: FakeClock
) -> None:
    await backlog(rt, 3)
    partitions = lower(rt).partitions
    bp = backpressure(rt, partitions)

    bp.drained(10)
    clock.advance(2.0)
    await bp.tick()

    assert bp.drain_rate == pytest.approx(DRAIN_EWMA * 10 / 2.0)
    assert bp.backlog == 3
    assert partitions.backlog == {0: 3}  # placement counts from here
    assert bp.finished == 0


async def test_with_no_workers_draining_a_backlog_is_no_overload(
    rt: Runtime, clock: FakeClock
) -> None:
    rt = with_settings(rt, overload_min_backlog=1, overload_s=2.0)
    await backlog(rt, 20)
    bp = backpressure(rt)

    for _ in range(SATURATED_TICKS + 2):
        clock.advance(1.0)
        await bp.tick()

    assert not bp.policy.overloaded
    bp.admit("acme", 1000)  # nothing refused


async def test_once_overloaded_a_heavy_tenant_is_refused_and_a_quiet_one_is_not(
    rt: Runtime, clock: FakeClock
) -> None:
    rt = with_settings(rt, overload_min_backlog=1, overload_s=2.0)
    await backlog(rt, 20)  # 20 s of draining at 1 task a second
    bp = backpressure(rt)

    for tick in range(1, SATURATED_TICKS + 1):
        bp.admit("heavy", 100)  # accepted: not overloaded yet
        bp.drained(1)
        clock.advance(1.0)
        await bp.tick()
        assert bp.policy.overloaded == (tick == SATURATED_TICKS)

    refused = []
    for _ in range(20):
        try:
            bp.admit("heavy", 1)
        except TenantThrottled as exc:
            refused.append(exc.retry_after_s)
        bp.admit("quiet", 1)  # never refused
    assert refused and all(s >= 1 for s in refused)


async def test_a_slow_backlog_count_is_made_again_only_after_twenty_times_its_duration(
    rt: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await backlog(rt, 3)
    bp = backpressure(rt)
    # A backlog big enough that walking it takes a quarter second.
    counts = slow_counts(rt, clock, monkeypatch, [0.25])
    await bp.tick()
    assert (len(counts), bp.backlog) == (1, 3)

    for _ in range(2):
        await make_task(rt, tenant, FunctionConfig(name=FN))
    for _ in range(4):  # the next 4.75 s: the last count stands (5 % of a reader's time)
        clock.advance(1.0)
        await bp.tick()
    assert (len(counts), bp.backlog) == (1, 3)
    clock.advance(1.0)
    await bp.tick()
    assert len(counts) == 2 and bp.backlog == 5


async def test_however_slow_the_count_it_is_made_again_within_five_seconds(
    rt: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await backlog(rt, 3)
    bp = backpressure(rt)
    counts = slow_counts(rt, clock, monkeypatch, [3.0, 0.001])  # a cold cache once
    await bp.tick()  # at 0 s, and the count takes 3 s
    clock.advance(COUNT_STALE_S - 3.0 - 0.5)
    await bp.tick()
    assert len(counts) == 1  # the last count stands
    clock.advance(0.5)
    await bp.tick()
    assert len(counts) == 2  # COUNT_STALE_S after the slow one began, not 20 x 3 s
