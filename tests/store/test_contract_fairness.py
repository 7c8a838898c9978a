"""The store contract for shared pools, fair tags and tenant limits, on every backend:
a pool claims across tenants in tag order, never a tenant's own function, and leaves
out tenants claimed under limits; retags, the fair clock, last tags, lease work for a
pool worker across tenants, and limited claims under several limits at once."""

from __future__ import annotations

import msgspec

from sluice.contract import FunctionConfig
from sluice.model import SHARED
from sluice.store import ClaimRequest, LeaseRenewal, Limit, Store
from tests.store.test_contract import FN, LEASE_S, NOW, new_task, scheduled_task, submit

POOL = "pool:w1"


async def tenants(store: Store, *names: str) -> list[str]:
    return [(await store.create_tenant(n, NOW)).id for n in names]


async def test_a_pool_claims_across_tenants_in_tag_order(store: Store) -> None:
    a, b = await tenants(store, "a", "b")
    (a1, a2) = await submit(store, a, new_task(stag=1.0), new_task(stag=3.0))
    (b1,) = await submit(store, b, new_task(stag=2.0))
    (claimed,) = await store.claim_tasks([ClaimRequest(SHARED, POOL, (FN,), 10)], NOW, LEASE_S)
    assert [t.id for t in claimed] == [a1, b1, a2]
    assert {t.tenant_id for t in claimed} == {a, b} and [t.stag for t in claimed] == [1, 2, 3]
    assert await store.fair_clock() == 3.0  # the largest tag a pool runs


async def test_a_pool_leaves_out_excluded_tenants_and_tenants_own_functions(store: Store) -> None:
    a, b, c = await tenants(store, "a", "b", "c")
    await store.upsert_functions(c, [FunctionConfig(name=FN)], NOW)  # c serves FN itself
    (a1,) = await submit(store, a, new_task())
    await submit(store, b, new_task())
    await submit(store, c, new_task())
    request = ClaimRequest(SHARED, POOL, (FN,), 10, exclude=(b,))
    (claimed,) = await store.claim_tasks([request], NOW, LEASE_S)
    assert [t.id for t in claimed] == [a1]


async def test_a_headroom_claim_takes_only_the_tenants_it_names(store: Store) -> None:
    a, b, c, d = await tenants(store, "a", "b", "c", "d")
    await store.upsert_functions(c, [FunctionConfig(name=FN)], NOW)  # c serves FN itself
    await submit(store, a, *[new_task(stag=float(i)) for i in range(1, 11)])  # a's backlog
    (b1, b2) = await submit(store, b, new_task(stag=20.0), new_task(stag=3.5))
    await submit(store, c, new_task(stag=0.5))  # named, but its own function: not the pool's
    (d1,) = await submit(store, d, new_task(stag=2.5, priority=7))

    request = ClaimRequest(SHARED, POOL, (FN,), 2, tenants=(b, c, d), partitions=(0, 1))
    (claimed,) = await store.claim_tasks([request], NOW, LEASE_S)
    assert [t.id for t in claimed] == [d1, b2]  # priority, then tags, across the named
    (claimed,) = await store.claim_tasks([request], NOW, LEASE_S)
    assert [t.id for t in claimed] == [b1]  # behind all of a's backlog: found all the same
    (claimed,) = await store.claim_tasks([request], NOW, LEASE_S)
    assert claimed == []
    left_out = ClaimRequest(SHARED, POOL, (FN,), 2, exclude=(a,), tenants=(a,))
    (claimed,) = await store.claim_tasks([left_out], NOW, LEASE_S)
    assert claimed == []  # a tenant claimed under limits stays left out


async def test_pool_leases_renew_release_and_reconcile_across_tenants(store: Store) -> None:
    a, b = await tenants(store, "a", "b")
    await submit(store, a, new_task())
    await submit(store, b, new_task())
    (claimed,) = await store.claim_tasks([ClaimRequest(SHARED, POOL, (FN,), 10)], NOW, LEASE_S)
    ids = sorted(t.id for t in claimed)
    assert sorted(i for i, _, _ in await store.leased_to(SHARED, POOL)) == ids
    mine = [(t.id, t.attempt, t.dispatched_at) for t in claimed if t.tenant_id == a]
    assert await store.leased_to(a, POOL) == mine  # and by tenant, as before
    await store.extend_leases([LeaseRenewal(SHARED, POOL, tuple(ids))], NOW + 999)
    records = [await store.get_task(t.tenant_id, t.id) for t in claimed]
    assert all(r is not None and r.lease_until == NOW + 999 for r in records)
    assert await store.task_tenant(claimed[0].id) == claimed[0].tenant_id
    assert await store.task_tenant("nope") is None
    held = [(t.id, t.attempt, t.dispatched_at) for t in claimed]
    released = await store.release_tasks(SHARED, POOL, held, NOW)
    assert sorted(released) == ids
    for t in claimed:  # the hand-back is in each task's own tenant's timeline
        history = await store.list_history(t.tenant_id, t.id)
        assert [e.kind for e in history][-1] == "handed_back"


async def test_promotion_returns_what_retag_needs_and_retag_orders_the_claim(store: Store) -> None:
    (a,) = await tenants(store, "a")
    (s1, s2) = await submit(store, a, scheduled_task(NOW - 2), scheduled_task(NOW - 1))
    promoted = await store.promote_due(NOW, 100)
    assert {(p.id, p.run_at) for p in promoted} == {(s1, NOW - 2), (s2, NOW - 1)}
    await store.retag([(s1, 20.0), (s2, 10.0)])
    assert await store.last_tag(a, [FN]) == 20.0
    assert await store.last_tag(a, ["other"]) is None
    assert sum((await store.ready_backlog()).values()) == 2
    (claimed,) = await store.claim_tasks([ClaimRequest(a, "w", (FN,), 10)], NOW, LEASE_S)
    assert [t.id for t in claimed] == [s2, s1]  # by the new tags


async def test_a_limited_claim_respects_every_limit(store: Store) -> None:
    (a,) = await tenants(store, "a")
    await submit(
        store, a, *[new_task() for _ in range(10)], *[new_task("other") for _ in range(10)]
    )
    tenant_cap = Limit(f"tenant:{a}", None, max_concurrency=5)
    fn_rate = Limit(f"{a}:{FN}", FN, rate=1.0, burst=3)
    claim = await store.claim_limited(
        ClaimRequest(a, "w", (FN,), 10), [fn_rate, tenant_cap], NOW, LEASE_S
    )
    assert len(claim.tasks) == 3 and claim.retry_at is not None  # the rate's burst
    claim = await store.claim_limited(
        ClaimRequest(a, "w", ("other",), 10), [tenant_cap], NOW, LEASE_S
    )
    assert len(claim.tasks) == 2  # the tenant's cap: 5 running across its functions
    assert claim.retry_at is None and not claim.drained


async def test_quotas_are_listed(store: Store) -> None:
    a, _b = await tenants(store, "a", "b")
    await store.put_quota(a, msgspec.json.encode({"weight": 3.0}))
    assert await store.list_quotas() == [(a, b'{"weight":3.0}')]  # only tenants with quotas
