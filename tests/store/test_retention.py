"""Retention: ended tasks are purged after their time, with their attempts and history,
and their keys are free again."""

from __future__ import annotations

import msgspec

from sluice.model import READY, SCHEDULED, SUCCEEDED, Finish, NewTask, time_ordered_id_floor
from sluice.store import ClaimRequest, Store

DAY = 86400.0
T0 = 1_700_000_000.0


def task_at(created: float, n: int, key: str | None = None) -> NewTask:
    # Ids carry their creation time, as production ids do.
    task_id = time_ordered_id_floor(created)[:-12] + f"{n:012x}"
    return NewTask(
        id=task_id, function="f", payload=b'{"args":[],"kwargs":{}}', state=READY,
        priority=5, stag=created, run_at=created, max_attempts=3, key=key,
    )  # fmt: skip


async def finish_all(store: Store, tenant: str, now: float) -> None:
    request = ClaimRequest(tenant_id=tenant, worker="w", functions=("f",), limit=100)
    (claimed,) = await store.claim_tasks([request], now, 30.0)
    finishes = [
        Finish(
            tenant_id=tenant,
            task_id=t.id,
            attempt=t.attempt,
            worker="w",
            next_state=SUCCEEDED,
            outcome="succeeded",
            dispatched_at=now,
            started_at=now,
            finished_at=now,
            result=b"1",
        )
        for t in claimed
    ]
    await store.finish_attempts(finishes, now)


async def test_ended_tasks_past_retention_are_purged_and_their_keys_freed(store: Store) -> None:
    tenant = (await store.create_tenant("acme", T0)).id
    old = [task_at(T0, i, key="welcome-1" if i == 0 else None) for i in range(3)]
    await store.submit_tasks(tenant, old, T0)
    await finish_all(store, tenant, T0 + 1)
    waiting = msgspec.structs.replace(task_at(T0, 10), state=SCHEDULED, run_at=T0 + 100 * DAY)
    await store.submit_tasks(tenant, [waiting], T0)  # not ended: never purged, however old
    recent = task_at(T0 + 6 * DAY, 20)
    await store.submit_tasks(tenant, [recent], T0 + 6 * DAY)
    await finish_all(store, tenant, T0 + 6 * DAY)

    purged = await store.purge_tasks(T0 + 8 * DAY - 7 * DAY, 1000)

    assert purged == 3
    for t in old:
        assert await store.get_task(tenant, t.id) is None
        assert await store.list_attempts(tenant, t.id) == []
    assert (await store.get_task(tenant, recent.id)) is not None
    waiting_now = await store.get_task(tenant, waiting.id)
    assert waiting_now is not None
    assert waiting_now.state == SCHEDULED
    again = await store.submit_tasks(tenant, [task_at(T0 + 8 * DAY, 30, key="welcome-1")], T0)
    assert again[0].created


async def test_purge_works_in_batches(store: Store) -> None:
    tenant = (await store.create_tenant("acme", T0)).id
    await store.submit_tasks(tenant, [task_at(T0, i) for i in range(25)], T0)
    await finish_all(store, tenant, T0 + 1)

    batches = [await store.purge_tasks(T0 + DAY, 10) for _ in range(4)]

    assert batches == [10, 10, 5, 0]
