from tests.store.test_contract import *  # noqa


async def test_late_result_of_a_lost_attempt_is_stale(store, tenant):
    await submit(store, tenant, new_task())
    (first,) = await claim(store, tenant, worker="w1")
    assert len(await store.reap_leases(NOW + LEASE_S + 1, 100)) == 1
    (second,) = await claim(store, tenant, worker="w2", now=NOW + LEASE_S + 2)
    outcomes = await store.finish_attempts([finish(first, worker="w1")], NOW + LEASE_S + 3)
    events = await store.list_events(tenant, first.id)
    print(outcomes, events)
    assert outcomes == [STALE]
    assert "stale_result" in [e.kind for e in events]


async def test_late_result_of_a_lost_attempt_before_reclaim_is_stale(store, tenant):
    await submit(store, tenant, new_task())
    (first,) = await claim(store, tenant, worker="w1")
    assert len(await store.reap_leases(NOW + LEASE_S + 1, 100)) == 1
    outcomes = await store.finish_attempts([finish(first, worker="w1")], NOW + LEASE_S + 3)
    print(outcomes, await store.get_task(tenant, first.id))
    assert outcomes == [STALE]


async def test_claim_list_order(store, tenant):
    low = new_task(priority=0, stag=NOW)
    top = new_task(priority=9, stag=NOW)
    await submit(store, tenant, low, top)
    claimed = await claim(store, tenant)
    assert [c.id for c in claimed] == [top.id, low.id]
