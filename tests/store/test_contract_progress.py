"""The store contract for task progress, on every backend: a running attempt's latest
progress is kept on its task only from the worker that holds it, stays after the attempt
ends, and tasks that never report any have none."""

from __future__ import annotations

import json

import msgspec
import pytest

from sluice.store import ProgressNote, Store
from tests.store.test_contract import NOW, claim, finish, new_task, submit


@pytest.fixture
async def tenant(store: Store) -> str:
    return (await store.create_tenant("acme", NOW)).id


def note(tenant: str, task_id: str, worker: str, done: float, at: float) -> ProgressNote:
    return ProgressNote(tenant, task_id, 1, worker, done, 10.0, f"at {done:g}", at)


async def test_the_latest_progress_is_kept_from_the_lease_holder_only_and_after_the_end(
    store: Store, tenant: str
) -> None:
    (task_id, quiet_id) = await submit(store, tenant, new_task(), new_task())
    tasks = await claim(store, tenant, worker="w1", limit=2)
    task = next(t for t in tasks if t.id == task_id)
    await store.record_progress([note(tenant, task_id, "w1", 3, NOW + 1)])
    await store.record_progress(
        [
            note(tenant, task_id, "intruder", 9, NOW + 2),  # not its lease
            note("other-tenant", task_id, "w1", 9, NOW + 2),  # not its tenant
            msgspec.structs.replace(note(tenant, task_id, "w1", 9, NOW + 2), attempt=2),
        ]
    )
    got = await store.get_task(tenant, task_id)
    assert got is not None and got.progress is not None
    assert json.loads(got.progress) == {
        "done": 3.0, "total": 10.0, "message": "at 3", "at": NOW + 1, "attempt": 1,
    }  # fmt: skip
    await store.record_progress([note(tenant, task_id, "w1", 10, NOW + 3)])
    await store.finish_attempts([msgspec.structs.replace(finish(task), ready_at=task.ready_at)],
                                NOW + 4)  # fmt: skip
    # After the end: the last value stays, and a late report changes nothing.
    await store.record_progress([note(tenant, task_id, "w1", 1, NOW + 5)])
    got = await store.get_task(tenant, task_id)
    assert got is not None and got.progress is not None
    assert json.loads(got.progress)["done"] == 10.0
    quiet = await store.get_task(tenant, quiet_id)
    assert quiet is not None and quiet.progress is None
