"""The outbox in the store (both backends): rows are written in the transaction of the
end that makes them (a finish, a cancel, an expiry, a reaped lease), only for functions
with receivers; they come due in each task's order, are settled once, wait while their
receiver is disabled and come due again when it is enabled."""

from __future__ import annotations

import msgspec
import pytest

from sluice.model import FAILED, READY, Hook, Notice
from sluice.store import Store
from tests.store.test_contract import FN, LEASE_S, NOW, claim, finish, new_task, submit

URL = "https://hooks.example.com/in"


@pytest.fixture
async def tenant(store: Store) -> str:
    return (await store.create_tenant("notified", NOW)).id


@pytest.fixture
async def other(store: Store) -> str:
    return (await store.create_tenant("other", NOW)).id


def hooks(tenant: str) -> dict[tuple[str, str], tuple[Hook, ...]]:
    every = ("succeeded", "failed", "dead", "cancelled", "expired")
    return {(tenant, FN): (Hook(URL, every), Hook("function:next", ("succeeded",)))}


async def test_a_finish_writes_its_notices_with_it_and_once(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    [task] = await claim(store, tenant)
    done = msgspec.structs.replace(
        finish(task, result=b"7"),
        notify=(Notice("succeeded", URL, FN), Notice("succeeded", "function:next", FN)),
    )
    await store.finish_attempts([done], NOW + 1)
    await store.finish_attempts([done], NOW + 2)  # a resend: refused, nothing more written

    found = await store.list_notifications(tenant, task.id)
    assert [(n.event, n.url, n.state, n.tries) for n in found] == [
        ("succeeded", URL, "pending", 0), ("succeeded", "function:next", "pending", 0)
    ]  # fmt: skip
    assert all(n.id.startswith("msg_") and "." not in n.id for n in found)
    assert len({n.id for n in found}) == 2


async def test_a_finish_without_notices_writes_none(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    [task] = await claim(store, tenant)
    await store.finish_attempts([finish(task)], NOW + 1)
    assert await store.list_notifications(tenant, task.id) == []
    assert await store.due_notifications(NOW + 10, 10) == []


async def test_cancel_expiry_and_reaper_write_the_notices_of_functions_with_receivers(
    store: Store, tenant: str, other: str
) -> None:
    cancelled, expiring, running = await submit(
        store, tenant, new_task(), new_task(expires_at=NOW + 1), new_task()
    )
    theirs = (await submit(store, other, new_task()))[0]
    await store.cancel_tasks(tenant, [cancelled], NOW, hooks(tenant))
    await store.cancel_tasks(other, [theirs], NOW, hooks(tenant))  # no receivers of theirs
    await store.expire_tasks(NOW + 2, 100, hooks(tenant))
    [claimed] = await claim(store, tenant, now=NOW + 3)
    assert claimed.id == running
    reaped = await store.reap_leases(NOW + 3 + LEASE_S + 1, 100, hooks(tenant))
    assert [r.state for r in reaped] == [READY]

    events = {
        task_id: [(n.event, n.url) for n in await store.list_notifications(tenant, task_id)]
        for task_id in (cancelled, expiring, running)
    }
    assert events == {
        cancelled: [("cancelled", URL)],
        expiring: [("expired", URL)],
        running: [(FAILED, URL)],
    }
    assert await store.list_notifications(other, theirs) == []


async def test_a_tasks_rows_come_due_in_order_and_are_settled_once(
    store: Store, tenant: str
) -> None:
    [task_id] = await submit(store, tenant, new_task())
    for attempt in (1, 2):
        [task] = await claim(store, tenant, now=NOW + attempt)
        state = READY if attempt == 1 else "succeeded"
        event = "failed" if attempt == 1 else "succeeded"
        done = finish(task, next_state=state, outcome="failed" if attempt == 1 else "succeeded")
        await store.finish_attempts(
            [msgspec.structs.replace(done, notify=(Notice(event, URL, FN),))], NOW + attempt
        )
    [first] = await store.due_notifications(NOW + 5, 10)  # the second waits for the first
    assert (first.task_id, first.event) == (task_id, "failed")
    assert await store.settle_notification(first, "pending", NOW + 60, NOW + 5, 503, "down")
    assert not await store.settle_notification(first, "delivered", None, NOW + 5, 200, "")
    assert await store.due_notifications(NOW + 5, 10) == []  # still first in line
    [again] = await store.due_notifications(NOW + 61, 10)
    assert (again.id, again.tries, again.status) == (first.id, 1, 503)
    assert await store.settle_notification(again, "delivered", None, NOW + 61, 200, "ok")
    [second] = await store.due_notifications(NOW + 61, 10)
    assert second.event == "succeeded"


async def test_a_disabled_receiver_holds_its_rows_until_enabled(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    [task] = await claim(store, tenant)
    notice = (Notice("succeeded", URL, FN),)
    await store.finish_attempts([msgspec.structs.replace(finish(task), notify=notice)], NOW)
    await store.disable_endpoint(tenant, URL, NOW + 1, "failing")
    assert await store.due_notifications(NOW + 2, 10) == []
    [shown] = await store.list_endpoints(tenant)
    assert (shown.url, shown.disabled_at, shown.reason) == (URL, NOW + 1, "failing")

    assert await store.enable_endpoint(tenant, URL, NOW + 3)
    assert not await store.enable_endpoint(tenant, URL, NOW + 3)  # not disabled now
    [due] = await store.due_notifications(NOW + 3, 10)
    assert due.task_id == task.id


TASK_HOOKS = '[{"url": "https://mine.example.com/in", "events": ["cancelled", "expired"]}]'


async def test_a_tasks_own_webhooks_are_kept_claimed_and_read_with_it(
    store: Store, tenant: str
) -> None:
    own, plain = await submit(
        store, tenant, msgspec.structs.replace(new_task(), webhooks=TASK_HOOKS), new_task()
    )
    by_id = {t.id: t for t in await claim(store, tenant)}
    assert (by_id[own].webhooks, by_id[plain].webhooks) == (TASK_HOOKS, None)
    record = await store.get_task(tenant, own)
    assert record is not None and record.webhooks == TASK_HOOKS
    assert (await store.get_task(tenant, plain)).webhooks is None  # type: ignore[union-attr]


async def test_cancel_and_expiry_write_a_tasks_own_webhooks_without_function_receivers(
    store: Store, tenant: str
) -> None:
    own = msgspec.structs.replace(new_task(), webhooks=TASK_HOOKS)
    expiring = msgspec.structs.replace(new_task(expires_at=NOW + 1), webhooks=TASK_HOOKS)
    cancelled, expired, plain = await submit(store, tenant, own, expiring, new_task())
    await store.cancel_tasks(tenant, [cancelled, plain], NOW, {})  # no function has any
    await store.expire_tasks(NOW + 2, 100, {})
    mine = "https://mine.example.com/in"
    assert [(n.event, n.url) for n in await store.list_notifications(tenant, cancelled)] == [
        ("cancelled", mine)
    ]
    assert [(n.event, n.url) for n in await store.list_notifications(tenant, expired)] == [
        ("expired", mine)
    ]
    assert await store.list_notifications(tenant, plain) == []


async def test_each_try_is_kept_and_pending_retries_are_counted_per_receiver(
    store: Store, tenant: str
) -> None:
    await submit(store, tenant, new_task())
    [task] = await claim(store, tenant)
    notice = (Notice("succeeded", URL, FN),)
    await store.finish_attempts([msgspec.structs.replace(finish(task), notify=notice)], NOW)
    [due] = await store.due_notifications(NOW + 1, 10)
    assert due.log is None and await store.retrying_counts(tenant) == {}
    log = '[{"at": 1.0, "status": 503}]'
    assert await store.settle_notification(due, "pending", NOW + 5, NOW + 1, 503, "down", log)
    [again] = await store.due_notifications(NOW + 5, 10)
    assert again.log == log
    assert await store.retrying_counts(tenant) == {URL: 1}
    assert await store.settle_notification(again, "delivered", None, NOW + 5, 200, "ok", "[]")
    assert await store.retrying_counts(tenant) == {}


async def test_a_tenants_signing_secrets_are_kept_and_replaced(
    store: Store, tenant: str, other: str
) -> None:
    assert await store.get_webhook_secrets(tenant) is None
    await store.set_webhook_secrets(tenant, ["whsec_a"], NOW)
    await store.set_webhook_secrets(tenant, ["whsec_b", "whsec_a"], NOW + 1)
    assert await store.get_webhook_secrets(tenant) == (["whsec_b", "whsec_a"], NOW + 1)
    assert await store.get_webhook_secrets(other) is None
