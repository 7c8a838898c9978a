"""Store contract for pause rules and held tasks."""

from __future__ import annotations

import pytest

from sluice.model import PAUSED, READY, RUNNING, SCHEDULED
from sluice.store import Store
from tests.store.test_contract import NOW, claim, new_task, scheduled_task, state_of, submit


@pytest.fixture
async def tenant(store: Store) -> str:
    return (await store.create_tenant("acme", NOW)).id


@pytest.fixture
async def other(store: Store) -> str:
    return (await store.create_tenant("globex", NOW)).id


async def test_pause_rules_are_kept_listed_by_tenant_and_deleted_once(
    store: Store, tenant: str, other: str
) -> None:
    await store.create_pause(tenant, "p1", b'{"function":["send"]}', NOW)
    await store.create_pause(other, "p2", b'{"tags":["x"]}', NOW + 1)

    assert [(p.id, p.selector) for p in await store.list_pauses(tenant)] == [
        ("p1", b'{"function":["send"]}')
    ]
    assert [p.tenant_id for p in await store.list_pauses(None)] == sorted([tenant, other])
    assert await store.delete_pause(other, "p1") is None
    assert await store.delete_pause(tenant, "p1") == b'{"function":["send"]}'
    assert await store.delete_pause(tenant, "p1") is None


async def test_held_tasks_leave_claims_and_come_back_ready_or_scheduled(
    store: Store, tenant: str, other: str
) -> None:
    ready, later, running = new_task(), scheduled_task(run_at=NOW + 60), new_task()
    await submit(store, tenant, running)
    (claimed,) = await claim(store, tenant)
    await submit(store, tenant, ready, later)

    held = await store.hold_tasks(tenant, [ready.id, later.id, running.id])

    assert sorted(held) == sorted([ready.id, later.id])
    assert await store.hold_tasks(other, [ready.id]) == []
    assert await state_of(store, tenant, ready.id) == PAUSED
    assert await state_of(store, tenant, running.id) == RUNNING
    assert await claim(store, tenant) == []
    released = await store.unhold_tasks(tenant, [ready.id, later.id], NOW + 1)
    assert sorted(released) == sorted([(ready.id, READY), (later.id, SCHEDULED)])
    assert await store.unhold_tasks(tenant, [ready.id], NOW + 2) == []
    assert [t.id for t in await claim(store, tenant)] == [ready.id]
    assert claimed.id == running.id


async def test_a_held_task_still_expires_when_its_deadline_passes(
    store: Store, tenant: str
) -> None:
    task = new_task(expires_at=NOW + 10)
    await submit(store, tenant, task)
    await store.hold_tasks(tenant, [task.id])

    assert await store.expire_tasks(NOW + 11, 100) == [(tenant, task.id)]
    assert await state_of(store, tenant, task.id) == "expired"
