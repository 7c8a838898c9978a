"""The store contract for counts, on every backend: rollup minutes add up across calls
(as they do across nodes), are read per tenant or for all and trimmed by age; the
backlog count groups waiting, running and dead tasks by tenant, function and state, and
its snapshot is replaced whole and read per tenant."""

from __future__ import annotations

import pytest

from sluice.contract import FunctionConfig
from sluice.model import PAUSED, SHARED
from sluice.store import BacklogRow, RollupRow, Store
from tests.store.test_contract import NOW, claim, new_task, scheduled_task, submit

MINUTE = NOW - NOW % 60


@pytest.fixture
async def tenant(store: Store) -> str:
    return (await store.create_tenant("acme", NOW)).id


@pytest.fixture
async def other(store: Store) -> str:
    return (await store.create_tenant("globex", NOW)).id


async def test_rollup_minutes_add_up_across_writes(store: Store) -> None:
    a = RollupRow("t-a", "send", MINUTE, submitted=3, started=2, waits=2, wait_s=0.5)
    again = RollupRow("t-a", "send", MINUTE, submitted=1, succeeded=2, runs=2, run_s=1.25)
    other = RollupRow("t-b", "send", MINUTE + 60, dead=1)

    await store.add_rollup([a, other])
    await store.add_rollup([again])
    await store.add_rollup([])

    assert await store.list_rollup("t-a", MINUTE) == [
        RollupRow("t-a", "send", MINUTE, submitted=4, started=2, succeeded=2, waits=2,
                  wait_s=0.5, runs=2, run_s=1.25)
    ]  # fmt: skip
    assert await store.list_rollup("t-b", 0.0) == [other]
    assert await store.list_rollup("t-a", MINUTE + 60) == []
    assert [r.tenant_id for r in await store.list_rollup(None, 0.0)] == ["t-a", "t-b"]


async def test_purge_rollup_drops_minutes_before_the_cutoff(store: Store) -> None:
    await store.add_rollup([RollupRow("t", "f", MINUTE - 60 * i, submitted=1) for i in range(3)])

    assert await store.purge_rollup(MINUTE - 60) == 1

    assert [r.minute for r in await store.list_rollup("t", 0.0)] == [MINUTE - 60, MINUTE]


async def test_count_backlog_groups_tasks_by_tenant_function_and_state(
    store: Store, tenant: str, other: str
) -> None:
    await submit(store, tenant, new_task(), new_task(), new_task("resize"))
    await submit(store, tenant, scheduled_task(NOW + 60), new_task(state=PAUSED))
    await submit(store, other, new_task())
    await claim(store, other)

    counts = {(r.tenant_id, r.function, r.state): r.tasks for r in await store.count_backlog()}

    assert counts == {
        (tenant, "send", "ready"): 2,
        (tenant, "resize", "ready"): 1,
        (tenant, "send", "scheduled"): 1,
        (tenant, "send", "paused"): 1,
        (other, "send", "running"): 1,
    }
    oldest = {r.function: r.oldest for r in await store.count_backlog() if r.state == "ready"}
    assert oldest == {"send": NOW, "resize": NOW}


async def test_the_backlog_snapshot_is_replaced_whole_and_read_per_tenant(store: Store) -> None:
    assert await store.list_backlog(None) == ([], None)
    await store.put_backlog([BacklogRow("t-a", "send", "ready", 5, NOW - 3)], NOW)
    rows = [BacklogRow("t-a", "send", "paused", 2), BacklogRow("t-b", "send", "ready", 1)]

    await store.put_backlog(rows, NOW + 5)

    assert await store.list_backlog("t-a") == ([rows[0]], NOW + 5)
    assert await store.list_backlog(None) == (rows, NOW + 5)


async def test_count_ahead_counts_ready_tasks_before_a_task_in_fair_order_up_to_a_cap(
    store: Store, tenant: str, other: str
) -> None:
    first, _second, _third, me = await submit(
        store, tenant, new_task(stag=NOW), new_task(stag=NOW + 1), new_task(priority=9,
        stag=NOW + 5), new_task(stag=NOW + 2),
    )  # fmt: skip
    await submit(store, tenant, new_task("resize", stag=NOW), new_task(stag=NOW + 3))
    await submit(store, other, new_task(stag=NOW))

    assert await store.count_ahead(tenant, me, 100) == 3  # two older tags and a higher level
    assert await store.count_ahead(tenant, me, 2) == 2  # the cap
    assert await store.count_ahead(tenant, first, 100) == 1  # only the higher level
    assert await store.count_ahead(other, me, 100) == 0  # not its task


async def test_count_running_and_rate_states_read_what_limits_use(
    store: Store, tenant: str
) -> None:
    await submit(store, tenant, new_task(), new_task(), new_task("resize"))
    await claim(store, tenant, limit=1)
    await claim(store, tenant, functions=("resize",))

    assert await store.count_running(tenant, "send") == 1
    assert await store.count_running(tenant, None) == 2
    assert await store.rate_states(["nope"]) == {}


async def test_count_load_counts_a_tenants_functions_ready_paused_running_and_due(
    store: Store, tenant: str, other: str
) -> None:
    await submit(store, tenant, new_task(), new_task(), new_task(), new_task("resize"))
    await submit(store, tenant, new_task(state=PAUSED), new_task("other_fn"))
    await submit(store, tenant, scheduled_task(NOW + 10), scheduled_task(NOW + 60))
    await submit(store, other, new_task(), new_task())
    await claim(store, tenant, limit=1)

    rows = await store.count_load(tenant, ["send", "resize"], NOW + 30, 100)

    counts = {(r.function, r.state): r.tasks for r in rows}
    assert counts == {
        ("send", "ready"): 2, ("resize", "ready"): 1, ("send", "paused"): 1,
        ("send", "running"): 1, ("send", "due"): 1,
    }  # fmt: skip
    assert {r.tenant_id for r in rows} == {tenant}  # never another tenant's
    assert {r.oldest for r in rows if r.state == "ready"} == {NOW}
    capped = await store.count_load(tenant, ["send", "resize"], NOW + 30, 2)
    assert sum(r.tasks for r in capped if r.state == "ready") == 2  # the cap


async def test_count_load_of_shared_pools_spans_tenants_and_counts_pool_leases(
    store: Store, tenant: str, other: str
) -> None:
    await submit(store, tenant, new_task(), new_task())
    await submit(store, other, new_task(), new_task())
    await claim(store, tenant, worker="pool:w1", limit=1)
    await claim(store, other, worker="w2", limit=1)  # the tenant's own worker: not the pool's

    rows = await store.count_load(SHARED, ["send"], NOW + 30, 100)

    counts = {(r.tenant_id, r.state): r.tasks for r in rows}
    assert counts == {
        (tenant, "ready"): 1, (other, "ready"): 1, (tenant, "running"): 1,
    }  # fmt: skip


async def test_count_load_of_shared_pools_leaves_out_a_tenants_own_functions(
    store: Store, tenant: str, other: str
) -> None:
    # `other` registered "send" itself: its tasks of it are its own workers' alone (the
    # shared claims leave them), so the pool neither counts nor sees them.
    await store.upsert_functions(other, [FunctionConfig(name="send")], NOW)
    await submit(store, tenant, new_task())
    await submit(store, other, new_task(), new_task(state=PAUSED), scheduled_task(NOW + 10))

    rows = await store.count_load(SHARED, ["send"], NOW + 30, 100)

    assert {(r.tenant_id, r.state): r.tasks for r in rows} == {(tenant, "ready"): 1}
    own = await store.count_load(other, ["send"], NOW + 30, 100)
    assert {r.state: r.tasks for r in own} == {"ready": 1, "paused": 1, "due": 1}
