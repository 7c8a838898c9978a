"""The store contract for shuffle-sharding partitions, on every backend: a task keeps the
partition it was placed in, claims (a tenant's, a shared pool's, by level, under limits)
take only the partitions asked for, backlogs are counted per partition, a node reads
back the tasks claimed for its workers, and partition leases are taken, listed and given
up by their holders only."""

from __future__ import annotations

import time

import msgspec

from sluice.model import SHARED, NewTask
from sluice.store import ClaimRequest, Limit, Store
from tests.store.test_contract import FN, LEASE_S, NOW, new_task, submit

TTL_S = 60.0  # a lease's lifetime: long enough that none runs out during a test


def placed(partition: int, **fields: object) -> NewTask:
    return msgspec.structs.replace(new_task(**fields), partition=partition)  # type: ignore[arg-type]


async def tenants(store: Store, *names: str) -> list[str]:
    return [(await store.create_tenant(n, NOW)).id for n in names]


async def claim_ids(store: Store, request: ClaimRequest) -> list[str]:
    (claimed,) = await store.claim_tasks([request], NOW, LEASE_S)
    return [t.id for t in claimed]


def counted(backlog: dict[int, int]) -> dict[int, int]:
    return {p: n for p, n in backlog.items() if n}  # a partition with none may be left out


async def test_a_task_keeps_its_partition(store: Store) -> None:
    (a,) = await tenants(store, "a")
    plain, p3, p7 = new_task(), placed(3), placed(7)
    await submit(store, a, plain, p3, p7)
    for task, partition in ((plain, 0), (p3, 3), (p7, 7)):
        record = await store.get_task(a, task.id)
        assert record is not None and record.partition == partition
    await claim_ids(store, ClaimRequest(a, "w", (FN,), 10))
    record = await store.get_task(a, p7.id)
    assert record is not None and record.state == "running" and record.partition == 7


async def test_a_tenant_claim_takes_only_its_partitions(store: Store) -> None:
    (a,) = await tenants(store, "a")
    one, two, three = placed(1, stag=NOW + 2), placed(2, stag=NOW), placed(3, stag=NOW + 1)
    one_top = placed(1, priority=9, stag=NOW + 5)
    await submit(store, a, one, two, three, one_top)
    assert await claim_ids(store, ClaimRequest(a, "w", (FN,), 10, partitions=())) == []
    got = await claim_ids(store, ClaimRequest(a, "w", (FN,), 10, partitions=(1, 3)))
    assert got == [one_top.id, three.id, one.id]  # fair order within the partitions
    assert await claim_ids(store, ClaimRequest(a, "w", (FN,), 10, partitions=(1, 3))) == []
    assert await claim_ids(store, ClaimRequest(a, "w", (FN,), 10)) == [two.id]  # None: all


async def test_a_shared_claim_takes_only_its_partitions(store: Store) -> None:
    a, b = await tenants(store, "a", "b")
    a1, a2 = placed(1, stag=1.0), placed(2, stag=2.0)
    b2, b3 = placed(2, stag=3.0), placed(3, stag=0.5)
    await submit(store, a, a1, a2)
    await submit(store, b, b2, b3)
    pool = ClaimRequest(SHARED, "pool", (FN,), 10, partitions=(2,))
    (claimed,) = await store.claim_tasks([pool], NOW, LEASE_S)
    assert [t.id for t in claimed] == [a2.id, b2.id]
    assert [t.tenant_id for t in claimed] == [a, b]
    pool = ClaimRequest(SHARED, "pool", (FN,), 10, exclude=(b,), partitions=(1, 3))
    assert await claim_ids(store, pool) == [a1.id]  # b3 is b's, left out
    assert await claim_ids(store, ClaimRequest(SHARED, "pool", (FN,), 10)) == [b3.id]


async def test_a_level_claim_takes_only_its_partitions(store: Store) -> None:
    a, b = await tenants(store, "a", "b")
    top1, top2 = placed(1, priority=7, stag=2.0), placed(2, priority=7, stag=1.0)
    low1 = placed(1, priority=3, stag=0.0)
    await submit(store, a, top1, top2, low1)
    b_top1, b_top2 = placed(1, priority=7, stag=0.5), placed(2, priority=7, stag=0.1)
    await submit(store, b, b_top1, b_top2)
    level = ClaimRequest(a, "w", (FN,), 10, priority=7, partitions=(1,))
    assert await claim_ids(store, level) == [top1.id]
    shared = ClaimRequest(SHARED, "pool", (FN,), 10, priority=7, partitions=(1,))
    assert await claim_ids(store, shared) == [b_top1.id]  # a's top1 already running
    shared = ClaimRequest(SHARED, "pool", (FN,), 10, priority=7, partitions=(2,))
    assert await claim_ids(store, shared) == [b_top2.id, top2.id]
    state = await store.get_task(a, low1.id)
    assert state is not None and state.state == "ready"  # another level


async def test_a_limited_claim_takes_only_its_partitions(store: Store) -> None:
    (a,) = await tenants(store, "a")
    p1 = [placed(1, stag=NOW + i) for i in range(3)]
    p2 = [placed(2, stag=NOW + i + 0.5) for i in range(3)]
    await submit(store, a, *p1, *p2)
    cap = Limit(f"tenant:{a}", None, max_concurrency=2)
    request = ClaimRequest(a, "w", (FN,), 10, partitions=(2,))
    claim = await store.claim_limited(request, [cap], NOW, LEASE_S)
    assert [t.id for t in claim.tasks] == [p2[0].id, p2[1].id]  # the cap, from partition 2
    claim = await store.claim_limited(request, [cap], NOW, LEASE_S)
    assert claim.tasks == []  # the cap counts running tasks of every partition
    roomy = Limit(f"tenant:{a}", None, max_concurrency=10)
    claim = await store.claim_limited(request, [roomy], NOW, LEASE_S)
    assert [t.id for t in claim.tasks] == [p2[2].id] and claim.drained
    assert counted(await store.tenant_backlog(a)) == {1: 3}


async def test_backlogs_count_ready_tasks_per_partition(store: Store) -> None:
    a, b = await tenants(store, "a", "b")
    scheduled = msgspec.structs.replace(placed(1), state="scheduled", run_at=NOW + 60)
    await submit(store, a, placed(1), placed(1), placed(2), scheduled)
    await submit(store, b, placed(2), placed(5), placed(5), placed(5))
    assert counted(await store.ready_backlog()) == {1: 2, 2: 2, 5: 3}
    assert counted(await store.tenant_backlog(a)) == {1: 2, 2: 1}  # not the scheduled one
    assert counted(await store.tenant_backlog(b)) == {2: 1, 5: 3}
    await claim_ids(store, ClaimRequest(a, "w", (FN,), 10, partitions=(1,)))
    await claim_ids(store, ClaimRequest(b, "w", (FN,), 2, partitions=(5,)))
    assert counted(await store.ready_backlog()) == {2: 2, 5: 1}
    assert counted(await store.tenant_backlog(a)) == {2: 1}
    assert counted(await store.tenant_backlog(b)) == {2: 1, 5: 1}
    assert counted(await store.tenant_backlog("nobody")) == {}


async def test_get_claimed_reads_back_a_workers_running_tasks_in_fair_order(
    store: Store,
) -> None:
    a, b = await tenants(store, "a", "b")
    low, top_late = placed(1, priority=2, stag=0.0), placed(2, priority=9, stag=5.0)
    top_early, mid = placed(3, priority=9, stag=4.0), placed(1, priority=5, stag=1.0)
    theirs, handed, waiting = placed(1, priority=8), placed(1, priority=1), placed(4)
    await submit(store, a, low, top_late, top_early, mid, handed)
    (w1,) = await store.claim_tasks([ClaimRequest(a, "w1", (FN,), 10)], NOW, LEASE_S)
    await submit(store, a, theirs, waiting)
    await claim_ids(store, ClaimRequest(a, "w2", (FN,), 1))  # theirs: the highest priority
    (b1,) = await submit(store, b, placed(2, priority=6, stag=3.0))
    (b_claimed,) = await store.claim_tasks([ClaimRequest(b, "w1", (FN,), 1)], NOW, LEASE_S)
    released = await store.release_tasks(a, "w1", [(handed.id, 1, NOW)], NOW)
    assert released == [handed.id]  # back to ready: no longer w1's

    asked = [waiting.id, theirs.id, handed.id, b1, low.id, mid.id, top_late.id, top_early.id]
    asked += ["no-such-task"]
    mine = [t for t in w1 if t.id != handed.id]
    assert [t.id for t in mine] == [top_early.id, top_late.id, mid.id, low.id]
    assert await store.get_claimed(a, "w1", asked) == mine  # as the claim returned them
    assert await store.get_claimed(a, "w1", [low.id, mid.id]) == mine[2:]
    assert [t.id for t in await store.get_claimed(a, "w2", asked)] == [theirs.id]
    assert await store.get_claimed(b, "w1", asked) == b_claimed  # b's only
    shared = await store.get_claimed(SHARED, "w1", asked)  # any tenant's, in fair order
    assert [t.id for t in shared] == [top_early.id, top_late.id, b1, mid.id, low.id]
    assert await store.get_claimed(a, "w1", []) == []


async def holders(store: Store, prefix: str) -> list[tuple[str, str]]:
    """(name, holder) of the unexpired leases, by name."""
    return sorted((name, holder) for name, holder, _until in await store.list_leases(prefix))


async def test_leases_are_granted_to_one_holder_and_expire(store: Store) -> None:
    # Leases run on the database's clock (store/base.py): a lease is made to run out by
    # renewing it into the past (a negative ttl).
    start = time.time()
    got = await store.acquire_leases(["part:2", "part:1"], "node-a", TTL_S)
    assert sorted(got) == ["part:1", "part:2"]
    got = await store.acquire_leases(["part:2", "part:3"], "node-b", TTL_S)
    assert got == ["part:3"]  # part:2 is node-a's
    got = await store.acquire_leases(["part:1", "part:2"], "node-a", TTL_S)
    assert sorted(got) == ["part:1", "part:2"]  # renewed
    assert await store.acquire_lease("node:a", "node-a", TTL_S)
    assert not await store.acquire_lease("part:3", "node-a", TTL_S)  # one table
    assert await holders(store, "part:") == [
        ("part:1", "node-a"), ("part:2", "node-a"), ("part:3", "node-b"),
    ]  # fmt: skip
    # Each runs ttl_s from when it was taken, on the database's clock (this machine's).
    for _name, _holder, until in await store.list_leases(""):
        assert start + TTL_S - 1 <= until <= time.time() + TTL_S + 1
    assert await holders(store, "node:") == [("node:a", "node-a")]
    assert len(await store.list_leases("")) == 4
    # Run out, a lease is neither listed nor held, and is anyone's to take.
    assert await store.acquire_leases(["part:3"], "node-b", -1.0) == ["part:3"]
    assert await holders(store, "part:") == [("part:1", "node-a"), ("part:2", "node-a")]
    got = await store.acquire_leases(["part:3", "part:1"], "node-a", TTL_S)
    assert sorted(got) == ["part:1", "part:3"]  # part:3 expired: taken over
    assert await holders(store, "part:3") == [("part:3", "node-a")]
    assert not await store.acquire_lease("part:3", "node-b", TTL_S)


async def test_only_the_holder_releases_a_lease(store: Store) -> None:
    assert await store.acquire_leases(["part:1"], "node-a", TTL_S) == ["part:1"]
    await store.release_lease("part:1", "node-b")  # not node-b's: nothing happens
    assert await holders(store, "part:") == [("part:1", "node-a")]
    assert await store.acquire_leases(["part:1"], "node-b", TTL_S) == []
    await store.release_lease("part:1", "node-a")
    assert await store.list_leases("part:") == []
    assert await store.acquire_leases(["part:1"], "node-b", TTL_S) == ["part:1"]
    await store.release_lease("part:9", "node-b")  # no such lease: nothing happens
    assert await holders(store, "part:") == [("part:1", "node-b")]
