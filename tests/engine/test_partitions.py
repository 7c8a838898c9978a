"""Shuffle sharding alone: which partitions a node dispatches, where a tenant's tasks
go, and hot tenants on the fake clock (engine/partitions.py)."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import replace

import msgspec
import pytest

from sluice.clock import FakeClock
from sluice.contract import TaskSpec
from sluice.engine.admission import build_task
from sluice.engine.partitions import PART, Partitions
from sluice.engine.runtime import Runtime
from sluice.model import SHARED
from sluice.policy.sharding import HOT_MIN, dedicated, shards
from tests.engine.conftest import make_function, make_tenant, with_settings


class Heavy:
    def __init__(self, **held: float) -> None:
        self.held = dict(held)


class Changes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_a_lone_node_takes_every_partition_and_claims_with_no_filter(rt: Runtime) -> None:
    changed = Changes()
    partitions = Partitions(rt, changed, heavy=Heavy())

    await partitions.balance()
    await partitions.balance()

    assert partitions.owned == frozenset(range(partitions.total))
    assert partitions.claim_filter is None
    assert partitions.others == () and partitions.others_for("acme") == ()
    assert len(await rt.store.list_leases(PART)) == partitions.total
    assert changed.count == 1  # the second balance moved nothing


async def test_two_nodes_split_the_partitions_and_each_asks_the_other_for_its_share(
    rt: Runtime,
) -> None:
    a = Partitions(rt, Changes(), heavy=Heavy())
    b = Partitions(replace(rt, node_id="node-b"), Changes(), heavy=Heavy())

    for node in (a, b, a, b, a):  # b joins; a hands b's share over; b takes it; a sees
        await node.balance()

    assert a.owned and b.owned and not a.owned & b.owned
    assert a.owned | b.owned == frozenset(range(a.total))
    assert a.claim_filter == tuple(sorted(a.owned))
    assert a.others == ("node-b",) and b.others == ("node-a",)
    assert a.others_for(SHARED) == ("node-b",)
    theirs = [*shards("acme", a.shared, a.k), dedicated("acme", a.shared, a.total - a.shared)]
    expected = ("node-b",) if any(p in b.owned for p in theirs) else ()
    assert a.others_for("acme") == expected

    await a.release()  # a clean stop hands everything over at once
    await b.balance()
    assert b.owned == frozenset(range(b.total)) and b.claim_filter is None


def test_a_submit_goes_to_the_less_backlogged_of_its_partitions_and_a_batch_spreads(
    rt: Runtime,
) -> None:
    partitions = Partitions(rt, Changes(), heavy=Heavy())
    busy, idle = shards("acme", partitions.shared, partitions.k)
    partitions.observe({busy: 10, idle: 0})

    assert partitions.place("acme", 1) == [idle]
    placed = partitions.place("acme", 19)

    assert set(placed) == {busy, idle}
    assert partitions.backlog[busy] == partitions.backlog[idle] == 15  # counted as placed


async def test_a_heavy_tenant_gets_a_partition_of_its_own_and_returns_when_it_cools(
    rt: Runtime, clock: FakeClock
) -> None:
    rt = with_settings(rt, hot_for_s=4.0, cool_for_s=8.0)  # looked at every second
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    partitions = Partitions(rt, Changes(), heavy=Heavy(**{tenant: 5000.0}))
    home = shards(tenant, partitions.shared, partitions.k)
    task = build_task(TaskSpec(function="send"), send, rt.settings, clock.now())
    flood = [msgspec.structs.replace(task, id=f"{i:036d}", partition=home[0])
             for i in range(HOT_MIN)]  # fmt: skip
    await rt.store.submit_tasks(tenant, flood, clock.now())
    partitions.observe({home[0]: HOT_MIN})

    for _ in range(4):  # looked at once a second: heavy from 0 s to 3 s
        await partitions.find_hot()
        clock.advance(1.0)
    assert partitions.place(tenant, 1)[0] in home  # not heavy for hot_for_s yet
    await partitions.find_hot()  # 4 s
    (own,) = partitions.place(tenant, 1)
    assert own >= partitions.shared  # a dedicated partition, numbered after the shared

    await rt.store.cancel_tasks(tenant, [t.id for t in flood], clock.now())
    for _ in range(9):  # a backlog under 100 for cool_for_s
        clock.advance(1.0)
        await partitions.find_hot()
    assert partitions.place(tenant, 1)[0] in home


async def test_a_slow_backlog_count_spaces_the_hot_looks_out_but_not_past_their_bound(
    rt: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hot look counts a heavy tenant's backlog, which grows with it: the next look
    waits LOOK_AFTER times as long as the last took (as backpressure's count), never less
    than every 5 s nor more than a quarter of hot_for_s (engine/partitions.py)."""
    rt = with_settings(rt, hot_for_s=60.0, cool_for_s=900.0)  # looks every 5 s, at most 15 s
    tenant = await make_tenant(rt)
    partitions = Partitions(rt, Changes(), heavy=Heavy(**{tenant: 5000.0}))
    counted = rt.store.tenant_backlog
    takes = [0.01]
    looks: list[float] = []

    async def count(tenant_id: str) -> dict[int, int]:
        looks.append(clock.monotonic())
        clock.advance(takes[0])
        return await counted(tenant_id)

    monkeypatch.setattr(rt.store, "tenant_backlog", count)

    async def look_for(seconds: float) -> list[float]:
        start, n = clock.monotonic(), len(looks)
        while clock.monotonic() - start < seconds:
            await partitions.find_hot()
            clock.advance(0.25)
        return [t - start for t in looks[n:]]

    assert len(await look_for(20.0)) == 4  # a fast count: every 5 s
    takes[0] = 0.5  # 0.5 s a count: every 10 s
    between = gaps(await look_for(40.0))[1:]  # the first follows a fast count
    assert between and all(9.9 <= g <= 10.6 for g in between)
    takes[0] = 3.0  # 3 s a count would be a minute: at most every 15 s
    between = gaps(await look_for(60.0))[1:]
    assert between and all(14.9 <= g <= 15.6 for g in between)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_a_hot_look_that_fails_is_spaced_out_as_a_slow_one(
    rt: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A count that takes 2 s and then fails (a statement timeout) waits as a slow one
    does, 20 x 2 s capped at 15 s, rather than being tried again at the next tick."""
    rt = with_settings(rt, hot_for_s=60.0, cool_for_s=900.0)
    tenant = await make_tenant(rt)
    partitions = Partitions(rt, Changes(), heavy=Heavy(**{tenant: 5000.0}))
    looks: list[float] = []

    async def count(tenant_id: str) -> dict[int, int]:
        looks.append(clock.monotonic())
        clock.advance(2.0)
        raise TimeoutError("canceling statement due to statement timeout")

    monkeypatch.setattr(rt.store, "tenant_backlog", count)
    start = clock.monotonic()
    while clock.monotonic() - start < 60.0:
        with contextlib.suppress(TimeoutError):  # (find_hot's own loop logs it and goes on)
            await partitions.find_hot()
        clock.advance(1.0)
    assert all(14.9 <= g <= 15.1 for g in gaps(looks))
    assert 4 <= len(looks) <= 5
