"""Store contract for cron schedules: config and firing state, pause and resume, and
the compare-and-set that makes each fire time create one task however many nodes try."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from sluice.contract import Selector
from sluice.model import NewTask, new_task_id
from sluice.store import Store
from tests.store.test_contract import NOW, PAYLOAD

CONFIG = b'{"function":"send","cron":"* * * * *"}'


@pytest.fixture
async def tenant(store: Store) -> str:
    return (await store.create_tenant("acme", NOW)).id


@pytest.fixture
async def other(store: Store) -> str:
    return (await store.create_tenant("globex", NOW)).id


def fired_task(name: str, at: float) -> NewTask:
    return NewTask(
        id=new_task_id(), function="send", payload=PAYLOAD, state="ready", priority=5,
        stag=at, run_at=at, max_attempts=3, key=f"sluice:cron:{name}:{at:.0f}",
    )  # fmt: skip


async def test_a_put_schedule_is_listed_with_a_fresh_firing_state(
    store: Store, tenant: str, other: str
) -> None:
    await store.put_schedule(tenant, "daily", CONFIG, NOW + 60, NOW)

    (row,) = await store.list_schedules(tenant)
    assert (row.name, row.config, row.paused) == ("daily", CONFIG, False)
    assert (row.created_at, row.last_fire_at, row.next_fire_at) == (NOW, NOW, NOW + 60)
    assert (row.fired, row.skipped) == (0, 0)
    assert await store.list_schedules(tenant, "daily") == [row]
    assert await store.list_schedules(tenant, "nightly") == []
    assert await store.list_schedules(other) == []


async def test_replacing_a_schedule_keeps_its_firing_state(store: Store, tenant: str) -> None:
    await store.put_schedule(tenant, "daily", CONFIG, NOW + 60, NOW)
    (row,) = await store.due_schedules(NOW + 60, 10)
    assert await store.fire_schedule(
        row, NOW + 60, NOW + 120, 0, [fired_task("daily", NOW + 60)], NOW + 61
    )

    await store.put_schedule(tenant, "daily", b'{"cron":"0 * * * *"}', NOW + 3600, NOW + 70)

    (after,) = await store.list_schedules(tenant)
    assert (after.config, after.last_fire_at, after.next_fire_at) == (
        b'{"cron":"0 * * * *"}', NOW + 60, NOW + 3600,
    )  # fmt: skip
    assert (after.created_at, after.fired) == (NOW, 1)


async def test_due_schedules_span_tenants_and_skip_paused_ones(
    store: Store, tenant: str, other: str
) -> None:
    await store.put_schedule(tenant, "a", CONFIG, NOW + 10, NOW)
    await store.put_schedule(other, "b", CONFIG, NOW + 5, NOW)
    await store.put_schedule(tenant, "later", CONFIG, NOW + 100, NOW)
    await store.put_schedule(tenant, "never", CONFIG, None, NOW)

    assert [(r.tenant_id, r.name) for r in await store.due_schedules(NOW + 10, 10)] == [
        (other, "b"), (tenant, "a"),
    ]  # fmt: skip
    assert await store.pause_schedule(tenant, "a", True, None, NOW + 11)
    assert [r.name for r in await store.due_schedules(NOW + 10, 10)] == ["b"]


async def test_one_fire_time_creates_one_task_however_many_nodes_try(
    store: Store, tenant: str
) -> None:
    await store.put_schedule(tenant, "tick", CONFIG, NOW + 60, NOW)
    (row,) = await store.due_schedules(NOW + 60, 10)

    won = await asyncio.gather(
        *(
            store.fire_schedule(row, NOW + 60, NOW + 120, 0, [fired_task("tick", NOW + 60)], NOW)
            for _ in range(3)
        )
    )

    assert sorted(won) == [False, False, True]
    (after,) = await store.list_schedules(tenant)
    assert (after.last_fire_at, after.next_fire_at, after.fired) == (NOW + 60, NOW + 120, 1)
    tasks = await store.list_tasks(tenant, Selector(), "", 10)
    assert [t.state for t in tasks] == ["ready"]


async def test_a_stale_row_cannot_fire_again_after_the_state_moved(
    store: Store, tenant: str
) -> None:
    await store.put_schedule(tenant, "tick", CONFIG, NOW + 60, NOW)
    (row,) = await store.due_schedules(NOW + 60, 10)
    first = fired_task("tick", NOW + 60)
    assert await store.fire_schedule(row, NOW + 60, NOW + 120, 0, [first], NOW + 60)
    again = fired_task("tick", NOW + 60)

    assert not await store.fire_schedule(row, NOW + 60, NOW + 120, 0, [again], NOW + 61)
    states = await store.get_task_states(tenant, [first.id, again.id])
    assert states == {first.id: "ready"}


async def test_skipped_fires_are_counted(store: Store, tenant: str) -> None:
    await store.put_schedule(tenant, "tick", CONFIG, NOW + 60, NOW)
    (row,) = await store.due_schedules(NOW + 3600, 10)

    assert await store.fire_schedule(row, NOW + 3600, NOW + 3660, 59, [], NOW + 3600)

    (after,) = await store.list_schedules(tenant)
    assert (after.fired, after.skipped, after.last_fire_at) == (0, 59, NOW + 3600)


async def test_resuming_skips_the_fires_missed_while_paused(store: Store, tenant: str) -> None:
    await store.put_schedule(tenant, "tick", CONFIG, NOW + 60, NOW)
    assert await store.pause_schedule(tenant, "tick", True, None, NOW + 1)

    assert await store.pause_schedule(tenant, "tick", False, NOW + 3660, NOW + 3600)

    (after,) = await store.list_schedules(tenant)
    assert (after.paused, after.last_fire_at, after.next_fire_at) == (False, NOW + 3600, NOW + 3660)


async def test_delete_and_pause_touch_only_the_named_tenants_schedule(
    store: Store, tenant: str, other: str
) -> None:
    await store.put_schedule(tenant, "tick", CONFIG, NOW + 60, NOW)

    assert not await store.delete_schedule(other, "tick")
    assert not await store.pause_schedule(other, "tick", True, None, NOW)
    assert [r.paused for r in await store.list_schedules(tenant)] == [False]
    assert await store.delete_schedule(tenant, "tick")
    assert not await store.delete_schedule(tenant, "tick")
    assert await store.list_schedules(tenant) == []


def test_fired_tasks_carry_a_key_per_fire_time() -> None:
    task = fired_task("tick", NOW + 60)
    assert msgspec.structs.asdict(task)["key"] == f"sluice:cron:tick:{NOW + 60:.0f}"
