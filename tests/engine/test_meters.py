"""Meters and the backlog snapshot, built alone: histogram buckets hold `le` bounds;
submits, dispatches and ends are counted once and become rollup rows per minute,
tenant and function; a flush that fails keeps its deltas; the tenant label is bounded
to the top tenants plus `_other`; the snapshot is the timers leader's job, on a fake
clock through `Timers.step()`."""

from __future__ import annotations

import asyncio
import random
import time

import msgspec
import pytest

from sluice.engine import meters as meters_module
from sluice.engine.adaptive import AdaptivePools
from sluice.engine.backpressure import Backpressure
from sluice.engine.blockers import Blockers
from sluice.engine.delays import Delays
from sluice.engine.meters import OTHER, Histogram, Meters
from sluice.engine.outcomes import Outcomes
from sluice.engine.pauses import Pauses
from sluice.engine.registry import Registry
from sluice.engine.runtime import Runtime
from sluice.engine.snapshot import SNAPSHOT_S, Snapshot
from sluice.engine.timers import Timers
from sluice.errors import QuotaExceeded, TenantThrottled
from sluice.model import DEAD, READY, SUCCEEDED, Finish, NewTask, SubmitResult
from sluice.policy.backpressure import Backpressure as BackpressurePolicy
from sluice.store import ACCEPTED, STALE, BacklogRow, Reaped, RollupRow
from tests.engine.conftest import FN, claimed, lower, make_function, make_task, make_tenant

T0 = 1_700_000_000.0


def test_a_histogram_counts_each_value_in_the_first_bucket_that_holds_it() -> None:
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(v)

    assert h.cumulative() == [("0.1", 2.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert h.sum == pytest.approx(8.65)


def finish(task_id: str, next_state: str, started: float, ended: float) -> Finish:
    return Finish("t", task_id, 1, "w1", next_state, "x", T0, started, ended)


def test_events_are_counted_and_become_rollup_rows(rt: Runtime) -> None:
    m = Meters(rt)
    now = rt.clock.now()
    minute = now - now % 60
    m.submits("t", [SubmitResult("a", True, READY, now), SubmitResult("b", False, READY, now)],
              [make_new(), make_new()])  # fmt: skip
    m.refused("t", 3, QuotaExceeded("full"))
    m.refused("t", 1, TenantThrottled("heavy", retry_after_s=1))
    task = claimed("t", "a")  # created at 0.0, dispatched at 0.0
    first = msgspec.structs.replace(task, created_at=now - 0.2, dispatched_at=now)
    retry = msgspec.structs.replace(task, attempt=2, dispatched_at=now)
    m.dispatched([[first], [retry]])
    m.attempts_ended(
        [finish("a", SUCCEEDED, now + 0.1, now + 0.6), finish("b", READY, 1.0, 3.0),
         finish("c", DEAD, 1.0, 2.0)],
        [ACCEPTED, ACCEPTED, STALE], [first, retry, None],
    )  # fmt: skip

    assert m.submitted == {
        ("t", "accepted"): 1,
        ("t", "deduplicated"): 1,
        ("t", "rejected_quota"): 3,
        ("t", "rejected_backpressure"): 1,
    }
    assert m.refusals["tenant"] == 1
    assert m.started[FN] == 2
    assert m.finished == {(FN, "succeeded"): 1, (FN, "retried"): 1}  # the stale one is not
    assert (sum(m.wait.counts), sum(m.run.counts)) == (1, 2)
    (row,) = m.take()
    # The wait runs to the worker's start, 0.1 s after the dispatch.
    assert m.wait.sum == pytest.approx(0.3)
    assert row == RollupRow("t", FN, minute, submitted=1, started=2, succeeded=1, failed=1,
                            waits=1, wait_s=pytest.approx(0.3), runs=2,
                            run_s=pytest.approx(2.5))  # fmt: skip
    assert m.take() == []


async def test_a_failed_flush_keeps_its_deltas_for_the_next(rt: Runtime) -> None:
    m = Meters(rt)
    m.ended(["t", "t"], DEAD)
    rows = m.take()
    m.give_back(rows)
    m.give_back(rows)

    (row,) = m.take()
    assert row.dead == 4
    m.give_back([row])
    assert await m.flush() == 1
    assert (await rt.store.list_rollup("t", 0.0))[0].dead == 4


async def test_a_flush_waits_for_the_one_still_writing(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timer's flush has taken the deltas and is writing them; a flush called now
    (a test, a shutdown) returns once they are written, not at once with nothing to do."""
    m = Meters(rt)
    store = rt.store
    writing, release = asyncio.Event(), asyncio.Event()
    add_rollup = store.add_rollup

    async def slow_add_rollup(rows: list[RollupRow]) -> None:
        writing.set()
        await release.wait()
        await add_rollup(rows)

    monkeypatch.setattr(store, "add_rollup", slow_add_rollup)
    m.ended(["t"], DEAD)
    timer = asyncio.create_task(m.flush())
    await writing.wait()
    caller = asyncio.create_task(m.flush())
    await asyncio.sleep(0)  # the caller runs up to its wait
    assert not caller.done()
    release.set()
    assert await timer == 1 and await caller == 0
    assert (await store.list_rollup("t", 0.0))[0].dead == 1


async def test_a_flush_cancelled_mid_write_lets_it_finish_and_nothing_is_written_twice(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node stops: its timers are cancelled while the rollup flush writes. The store
    may still commit that write (the SQLite writer thread runs what it was given): its
    rows must not go back to be written again by the stop's own flush."""
    m = Meters(rt)
    store = rt.store
    writing, release = asyncio.Event(), asyncio.Event()
    add_rollup = store.add_rollup
    commits: list[asyncio.Task[None]] = []

    async def committed_anyway(rows: list[RollupRow]) -> None:
        await release.wait()
        await add_rollup(rows)

    async def slow_add_rollup(rows: list[RollupRow]) -> None:
        # As the SQLite writer thread: a caller that stops waiting does not stop the write.
        commits.append(asyncio.create_task(committed_anyway(rows)))
        writing.set()
        await asyncio.shield(commits[-1])

    monkeypatch.setattr(store, "add_rollup", slow_add_rollup)
    m.ended(["t"], DEAD)
    timer = asyncio.create_task(m.flush())
    await writing.wait()
    timer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await timer
    m.ended(["t"], DEAD)  # counted after: the stop's flush writes this one
    stopping = asyncio.create_task(m.flush())
    await asyncio.sleep(0)
    assert not stopping.done()  # it waits for the cancelled flush's write
    release.set()
    assert await stopping == 1
    await asyncio.gather(*commits)
    assert (await store.list_rollup("t", 0.0))[0].dead == 2  # each end once
    assert m.take() == []


def test_the_tenant_label_is_bounded_to_the_top_tenants(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(meters_module, "TOP_TENANTS", 2)
    m = Meters(rt)
    assert [m.label(t) for t in ("a", "b", "c")] == ["a", "b", OTHER]

    # "c" submits most; "a" and "b" go quiet and lose their labels after LABEL_KEEP_S.
    minute = rt.clock.now()
    m.relabel([RollupRow("c", FN, minute, submitted=100)])
    assert m.label("c") == OTHER  # no free label yet: "a" and "b" were in the top 2K
    rt.clock.advance(meters_module.LABEL_KEEP_S + 1)  # type: ignore[attr-defined]
    m.relabel([RollupRow("c", FN, minute, submitted=100)])

    assert m.label("c") == "c"
    assert len(m._labels) <= 2


async def test_the_snapshot_is_the_timers_leaders_job_on_its_beat(rt: Runtime) -> None:
    low = lower(rt)
    registry = Registry()
    pauses = Pauses(rt, low.fairness, low.queues)
    blockers = Blockers(rt, registry, functions=low.functions, quotas=low.quotas,
                        pauses=pauses, partitions=low.partitions,
                        adaptive=AdaptivePools(rt, registry, low.functions, low.queues),
                        targets=_NoTargets())  # fmt: skip
    snapshot = Snapshot(rt, blockers)
    timers = Timers(rt)
    timers.every("snapshot", SNAPSHOT_S, snapshot.take_once, lead=True)
    tenant = await make_tenant(rt)
    fn = await make_function(rt, tenant, max_concurrency=1)
    for _ in range(3):
        await make_task(rt, tenant, fn)
    await timers.lead_once()

    await timers.step()
    await make_task(rt, tenant, fn)
    await timers.step()  # not due again yet
    taken = snapshot.taken_at

    assert snapshot.rows == [BacklogRow(tenant, FN, "ready", 3, rt.clock.now())]
    rt.clock.advance(SNAPSHOT_S)  # type: ignore[attr-defined]
    await timers.step()
    assert snapshot.rows[0].tasks == 4
    assert snapshot.taken_at == taken + SNAPSHOT_S  # type: ignore[operator]
    assert (await rt.store.list_backlog(tenant))[1] == snapshot.taken_at


def test_counting_a_task_costs_about_a_microsecond(rt: Runtime) -> None:
    """The hot path's added cost per task, measured (a loose bound: shared machines)."""
    m = Meters(rt)
    tasks = [claimed("t", str(i)) for i in range(1000)]
    finishes = [finish(str(i), SUCCEEDED, 1.0, 1.01) for i in range(1000)]
    outcomes = [ACCEPTED] * 1000
    began = time.perf_counter()
    for _ in range(20):
        m.dispatched([tasks])
        m.attempts_ended(finishes, outcomes, list(tasks))
    per_task = (time.perf_counter() - began) / 20_000

    assert per_task < 20e-6, f"{per_task * 1e6:.2f} µs per task"


class _NoTargets:
    def items(self) -> list[tuple[tuple[str, str], object]]:
        return []


def make_new() -> NewTask:
    return NewTask("x", FN, b"{}", READY, 5, 0.0, 0.0, 3)


async def test_server_decided_ends_are_counted_through_outcomes(rt: Runtime) -> None:
    below = lower(rt)
    policy = BackpressurePolicy(rt.clock.now(), random.Random(1))
    backpressure = Backpressure(rt, below.quotas, below.partitions, policy)
    meters = Meters(rt)
    outcomes = Outcomes(rt, below.queues, Delays(rt, below.fairness, below.queues),
                        backpressure, meters)  # fmt: skip
    tenant = await make_tenant(rt)
    fn = await make_function(rt, tenant)
    await make_task(rt, tenant, fn, ttl=5)

    outcomes.reaped([Reaped(tenant, "a", READY), Reaped(tenant, "b", DEAD)])
    outcomes.cancelled(tenant, 2)
    rt.clock.advance(10)  # type: ignore[attr-defined]
    assert await outcomes.expire_once() == 1

    assert meters.leases_lost == 2
    assert meters.finished == {("", "dead"): 1, ("", "cancelled"): 2, ("", "expired"): 1}
    (row,) = meters.take()
    assert (row.tenant_id, row.dead, row.cancelled, row.expired) == (tenant, 1, 2, 1)
