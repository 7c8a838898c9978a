"""The store contract, continued: the verbs of admins and operators rather than the hot
path — tenants and keys, cancel, list, delete, dead letters, hand-backs.

Each test runs once per backend (see conftest.py), with the fake `NOW` of test_contract.py.
"""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from sluice.contract import (
    ApiKey,
    DeadSelector,
    DeadTask,
    RetryPolicy,
    Selector,
    TaskSummary,
    Tenant,
)
from sluice.model import (
    CANCELLED,
    DEAD,
    DEFAULT_MAX_ATTEMPTS,
    EXPIRED,
    READY,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    NewTask,
    new_task_id,
)
from sluice.store import ACCEPTED, DUPLICATE, STALE, Cancelled, Store
from tests.store.test_contract import (
    FN,
    LEASE_S,
    NOW,
    claim,
    finish,
    new_task,
    scheduled_task,
    state_of,
    submit,
)

EVERYTHING = Selector()


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def tagged(*tags: str, **fields: object) -> NewTask:
    return msgspec.structs.replace(
        new_task(**fields),  # type: ignore[arg-type]
        tags=msgspec.json.encode(list(tags)).decode(),
    )


async def listed(store: Store, tenant: str, selector: Selector = EVERYTHING) -> list[str]:
    return [t.id for t in await store.list_tasks(tenant, selector, "", 100)]


async def make_dead(
    store: Store, tenant: str, function: str = FN, *, at: float = NOW, error: str = "boom"
) -> str:
    """A task that died on its only attempt, ending at `at`."""
    task = new_task(function, max_attempts=1)
    await submit(store, tenant, task)
    (claimed,) = await claim(store, tenant, functions=(function,), now=at)
    assert claimed.id == task.id
    died = finish(claimed, next_state=DEAD, outcome="failed", error_message=error)
    dead = msgspec.structs.replace(died, finished_at=at)
    assert await store.finish_attempts([dead], at) == [ACCEPTED]
    return task.id


async def succeed(store: Store, tenant: str) -> str:
    (task_id,) = await submit(store, tenant, new_task())
    (claimed,) = await claim(store, tenant)
    assert claimed.id == task_id
    assert await store.finish_attempts([finish(claimed)], NOW + 3) == [ACCEPTED]
    return task_id


@pytest.fixture
async def tenant(store: Store) -> str:
    return (await store.create_tenant("acme", NOW)).id


@pytest.fixture
async def other(store: Store) -> str:
    return (await store.create_tenant("globex", NOW)).id


# -- tenants and keys -------------------------------------------------------------


async def test_list_tenants_returns_every_tenant_in_name_order(store: Store) -> None:
    assert await store.list_tenants() == []
    globex = await store.create_tenant("globex", NOW)
    acme = await store.create_tenant("acme", NOW + 1)
    initech = await store.create_tenant("initech", NOW + 2)

    assert await store.list_tenants() == [acme, globex, initech]


async def test_get_tenant_by_name_tells_tenants_apart(
    store: Store, tenant: str, other: str
) -> None:
    assert await store.get_tenant_by_name("acme") == Tenant(tenant, "acme", NOW)
    assert await store.get_tenant_by_name("globex") == Tenant(other, "globex", NOW)
    assert tenant != other


async def test_list_api_keys_shows_a_tenants_keys_by_id_oldest_first(
    store: Store, tenant: str, other: str
) -> None:
    first, second, theirs = key_hash("a"), key_hash("b"), key_hash("c")
    await store.create_api_key(tenant, second, "sk_b", NOW + 1)
    await store.create_api_key(other, theirs, "sk_c", NOW)
    await store.create_api_key(tenant, first, "sk_a", NOW)

    assert await store.list_api_keys(tenant) == [
        ApiKey(id=first[:16], prefix="sk_a", created_at=NOW, revoked_at=None),
        ApiKey(id=second[:16], prefix="sk_b", created_at=NOW + 1, revoked_at=None),
    ]
    assert await store.list_api_keys(other) == [ApiKey(theirs[:16], "sk_c", NOW, None)]


async def test_revoked_key_is_no_longer_found_and_shows_when_it_was_revoked(
    store: Store, tenant: str
) -> None:
    revoked, kept = key_hash("a"), key_hash("b")
    await store.create_api_key(tenant, revoked, "sk_a", NOW)
    await store.create_api_key(tenant, kept, "sk_b", NOW + 1)

    assert await store.revoke_api_key(tenant, revoked[:16], NOW + 5) == revoked

    assert await store.find_api_key(revoked) is None
    assert await store.find_api_key(kept) == tenant
    assert await store.list_api_keys(tenant) == [
        ApiKey(revoked[:16], "sk_a", NOW, NOW + 5),
        ApiKey(kept[:16], "sk_b", NOW + 1, None),
    ]
    # Revoked already: no live key has that id, and the first revocation time stays.
    assert await store.revoke_api_key(tenant, revoked[:16], NOW + 9) is None
    assert (await store.list_api_keys(tenant))[0].revoked_at == NOW + 5


async def test_revoking_an_unknown_or_another_tenants_key_returns_none(
    store: Store, tenant: str, other: str
) -> None:
    mine = key_hash("a")
    await store.create_api_key(tenant, mine, "sk_a", NOW)

    assert await store.revoke_api_key(tenant, key_hash("unknown")[:16], NOW + 5) is None
    assert await store.revoke_api_key(other, mine[:16], NOW + 5) is None

    assert await store.find_api_key(mine) == tenant
    assert await store.list_api_keys(tenant) == [ApiKey(mine[:16], "sk_a", NOW, None)]


# -- cancel -----------------------------------------------------------------------


async def test_cancel_tasks_cancels_scheduled_ready_and_running_tasks(
    store: Store, tenant: str
) -> None:
    (running,) = await submit(store, tenant, new_task())
    await claim(store, tenant, worker="w1")
    ready, waiting = new_task(), scheduled_task(NOW + 60)
    await submit(store, tenant, ready, waiting)
    ids = [running, ready.id, waiting.id]

    cancelled = await store.cancel_tasks(tenant, ids, NOW + 5)
    record = await store.get_task(tenant, running)
    (attempt,) = await store.list_attempts(tenant, running)

    assert sorted(cancelled, key=lambda c: c.task_id) == sorted(
        [
            Cancelled(running, RUNNING, "w1"),
            Cancelled(ready.id, READY, None),
            Cancelled(waiting.id, SCHEDULED, None),
        ],
        key=lambda c: c.task_id,
    )
    assert await store.get_task_states(tenant, ids) == dict.fromkeys(ids, CANCELLED)
    assert record is not None
    assert (record.finished_at, record.lease_owner, record.lease_until) == (NOW + 5, None, None)
    assert (attempt.attempt, attempt.worker, attempt.outcome) == (1, "w1", "cancelled")
    assert attempt.finished_at == NOW + 5
    for task_id in ids:
        assert [e.kind for e in await store.list_history(tenant, task_id)] == ["cancelled"]
    # Nothing of them runs again: not claimed, not reaped, not promoted, not leased.
    assert await claim(store, tenant, now=NOW + 61) == []
    assert await store.reap_leases(NOW + LEASE_S + 1, 100) == []
    assert await store.promote_due(NOW + 61, 100) == []
    assert await store.leased_to(tenant, "w1") == []


async def test_cancel_tasks_leaves_ended_tasks_alone(store: Store, tenant: str) -> None:
    dead = await make_dead(store, tenant)
    done = await succeed(store, tenant)
    expiring = new_task(expires_at=NOW + 1)
    await submit(store, tenant, expiring)
    assert await store.expire_tasks(NOW + 1, 100) == [(tenant, expiring.id)]
    (cancelled,) = await submit(store, tenant, new_task())
    assert len(await store.cancel_tasks(tenant, [cancelled], NOW + 2)) == 1
    ids = [dead, done, expiring.id, cancelled]

    again = await store.cancel_tasks(tenant, [*ids, new_task_id()], NOW + 5)

    assert again == []
    assert await store.get_task_states(tenant, ids) == {
        dead: DEAD,
        done: SUCCEEDED,
        expiring.id: EXPIRED,
        cancelled: CANCELLED,
    }
    done_record = await store.get_task(tenant, done)
    assert done_record is not None
    assert done_record.finished_at == NOW + 2  # the attempt's end, not the cancel's
    assert [e.kind for e in await store.list_history(tenant, cancelled)] == ["cancelled"]
    assert await store.list_history(tenant, done) == []


@pytest.mark.parametrize(
    ("next_state", "outcome"),
    [(SUCCEEDED, "succeeded"), (READY, "failed"), (DEAD, "rejected")],
)
async def test_late_finish_of_a_cancelled_attempt_is_not_accepted(
    store: Store, tenant: str, next_state: str, outcome: str
) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant, worker="w1")
    assert len(await store.cancel_tasks(tenant, [task.id], NOW + 5)) == 1
    late = finish(task, next_state=next_state, outcome=outcome, result=b"1", error_message="x")

    outcomes = await store.finish_attempts([late], NOW + 6)
    record = await store.get_task(tenant, task.id)

    # The attempt already ended with the cancel: the answer is a resend at best, never
    # a new result (SQLite says DUPLICATE, so the worker's resends stop).
    assert outcomes[0] in (DUPLICATE, STALE)
    assert record is not None
    assert (record.state, record.finished_at, record.result) == (CANCELLED, NOW + 5, None)
    assert [a.outcome for a in await store.list_attempts(tenant, task.id)] == ["cancelled"]
    assert await claim(store, tenant, now=NOW + 7) == []


async def test_cancel_tasks_leaves_other_tenants_tasks_alone(
    store: Store, tenant: str, other: str
) -> None:
    (running,) = await submit(store, tenant, new_task())
    await claim(store, tenant, worker="w1")
    (ready,) = await submit(store, tenant, new_task())

    assert await store.cancel_tasks(other, [running, ready], NOW + 5) == []

    assert await store.get_task_states(tenant, [running, ready]) == {
        running: RUNNING,
        ready: READY,
    }
    assert await store.leased_to(tenant, "w1") == [(running, 1, NOW)]
    assert await store.list_attempts(tenant, running) == []
    assert await store.list_history(tenant, ready) == []


# -- list -------------------------------------------------------------------------


async def test_list_tasks_returns_summaries_newest_first(store: Store, tenant: str) -> None:
    first = tagged("x", "y", priority=7, key="order-1")
    second, third = new_task("resize"), new_task()
    await submit(store, tenant, first, second, third)
    (claimed,) = await claim(store, tenant, functions=("resize",))
    assert await store.finish_attempts([finish(claimed)], NOW + 3) == [ACCEPTED]

    page = await store.list_tasks(tenant, EVERYTHING, "", 10)

    assert page == [
        TaskSummary(third.id, FN, READY, 5, 0, NOW, None, None, []),
        TaskSummary(second.id, "resize", SUCCEEDED, 5, 1, NOW, NOW + 2, None, []),
        TaskSummary(first.id, FN, READY, 7, 0, NOW, None, "order-1", ["x", "y"]),
    ]


async def test_list_tasks_pages_newest_first_below_the_last_id_seen(
    store: Store, tenant: str
) -> None:
    ids = await submit(store, tenant, *(new_task() for _ in range(5)))

    pages, before = [], ""
    for _ in range(4):
        page = [t.id for t in await store.list_tasks(tenant, EVERYTHING, before, 2)]
        pages.append(page)
        before = page[-1] if page else before

    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]], []]


async def test_list_tasks_filters_by_function_and_state(store: Store, tenant: str) -> None:
    (running,) = await submit(store, tenant, new_task("send"))
    await claim(store, tenant, functions=("send",))
    send, resize, other_fn = new_task("send"), new_task("resize"), new_task("other")
    waiting = scheduled_task(NOW + 60, function="resize")
    await submit(store, tenant, send, resize, other_fn, waiting)

    by_function = await listed(store, tenant, Selector(function=["send", "resize"]))
    by_state = await listed(store, tenant, Selector(state=["running", "scheduled"]))
    both = await listed(store, tenant, Selector(function=["resize"], state=["ready"]))

    assert by_function == [waiting.id, resize.id, send.id, running]
    assert by_state == [waiting.id, running]
    assert both == [resize.id]


async def test_list_tasks_with_tags_matches_tasks_carrying_all_of_them(
    store: Store, tenant: str
) -> None:
    ab, a, cab, untagged = tagged("a", "b"), tagged("a"), tagged("c", "a", "b"), new_task()
    await submit(store, tenant, ab, a, cab, untagged)

    assert await listed(store, tenant, Selector(tags=["a", "b"])) == [cab.id, ab.id]
    assert await listed(store, tenant, Selector(tags=["a"])) == [cab.id, a.id, ab.id]
    assert await listed(store, tenant, Selector(tags=["b", "z"])) == []


async def test_list_tasks_filters_by_an_inclusive_priority_range(store: Store, tenant: str) -> None:
    tasks = [new_task(priority=p) for p in (0, 3, 5, 7, 9)]
    p0, p3, p5, p7, p9 = await submit(store, tenant, *tasks)

    assert await listed(store, tenant, Selector(priority_min=3, priority_max=7)) == [p7, p5, p3]
    assert await listed(store, tenant, Selector(priority_min=7)) == [p9, p7]
    assert await listed(store, tenant, Selector(priority_max=0)) == [p0]


async def test_list_tasks_filters_by_created_time_from_after_up_to_before(
    store: Store, tenant: str
) -> None:
    # Half-open, [created_after, created_before), as the dead selector's [since, until).
    t0, t10, t20 = new_task(), new_task(), new_task()
    for task, at in ((t0, NOW), (t10, NOW + 10), (t20, NOW + 20)):
        await store.submit_tasks(tenant, [task], at)

    after = Selector(created_after=NOW + 10)
    before = Selector(created_before=NOW + 10)
    window = Selector(created_after=NOW + 10, created_before=NOW + 20)

    assert await listed(store, tenant, after) == [t20.id, t10.id]
    assert await listed(store, tenant, before) == [t0.id]
    assert await listed(store, tenant, window) == [t10.id]


async def test_list_tasks_filters_by_key(store: Store, tenant: str) -> None:
    k1, k2, plain = new_task(key="k1"), new_task(key="k2"), new_task()
    await submit(store, tenant, k1, k2, plain)

    assert await listed(store, tenant, Selector(key="k1")) == [k1.id]
    assert await listed(store, tenant, Selector(key="nope")) == []


async def test_list_tasks_hides_other_tenants_tasks(store: Store, tenant: str, other: str) -> None:
    mine, theirs = new_task(key="k"), new_task(key="k")
    await submit(store, tenant, mine)
    await submit(store, other, theirs)
    (newest,) = await submit(store, other, new_task())

    assert await listed(store, tenant) == [mine.id]
    assert await listed(store, tenant, Selector(key="k")) == [mine.id]
    assert await listed(store, other) == [newest, theirs.id]
    # A cursor taken from another tenant's page still shows only the tenant's own tasks.
    assert [t.id for t in await store.list_tasks(tenant, EVERYTHING, newest, 10)] == [mine.id]


# -- delete -----------------------------------------------------------------------


async def test_delete_tasks_deletes_tasks_that_are_not_running_with_their_history(
    store: Store, tenant: str
) -> None:
    # A ready task with history: one lost attempt and its lease_lost entry.
    (history,) = await submit(store, tenant, new_task())
    await claim(store, tenant)
    assert len(await store.reap_leases(NOW + LEASE_S + 1, 100)) == 1
    (running,) = await submit(store, tenant, new_task("resize"))
    await claim(store, tenant, worker="w2", functions=("resize",))
    dead = await make_dead(store, tenant, "other")
    keyed = scheduled_task(NOW + 60, key="k")
    await submit(store, tenant, keyed)
    ids = [history, running, dead, keyed.id]

    deleted = await store.delete_tasks(tenant, [*ids, new_task_id()])

    assert sorted(deleted) == sorted([history, dead, keyed.id])
    for task_id in deleted:
        assert await store.get_task(tenant, task_id) is None
        assert await store.list_attempts(tenant, task_id) == []
        assert await store.list_history(tenant, task_id) == []
    assert await store.get_task_states(tenant, ids) == {running: RUNNING}
    assert await store.leased_to(tenant, "w2") == [(running, 1, NOW)]
    assert await store.list_dead(tenant, DeadSelector(), "", 10) == []
    # The deleted task's key is free again.
    (again,) = await store.submit_tasks(tenant, [new_task(key="k")], NOW + 1)
    assert again.created


async def test_delete_tasks_leaves_other_tenants_tasks_alone(
    store: Store, tenant: str, other: str
) -> None:
    task_id = await make_dead(store, tenant)

    assert await store.delete_tasks(other, [task_id]) == []

    assert await state_of(store, tenant, task_id) == DEAD
    assert [a.outcome for a in await store.list_attempts(tenant, task_id)] == ["failed"]


# -- dead letters -----------------------------------------------------------------


async def test_list_dead_returns_dead_tasks_in_id_order(store: Store, tenant: str) -> None:
    a = await make_dead(store, tenant, at=NOW + 3, error="one")
    b = await make_dead(store, tenant, "resize", at=NOW + 1, error="two")
    c = await make_dead(store, tenant, at=NOW + 2, error="three")
    await succeed(store, tenant)
    await submit(store, tenant, new_task())

    dead = await store.list_dead(tenant, DeadSelector(), "", 10)

    assert dead == [  # with the last attempt's error type, which the console groups by
        DeadTask(a, FN, 1, "one", NOW + 3, "ValueError"),
        DeadTask(b, "resize", 1, "two", NOW + 1, "ValueError"),
        DeadTask(c, FN, 1, "three", NOW + 2, "ValueError"),
    ]


async def test_list_dead_filters_by_function_and_end_time(store: Store, tenant: str) -> None:
    a = await make_dead(store, tenant, at=NOW + 1)
    b = await make_dead(store, tenant, "resize", at=NOW + 2)
    c = await make_dead(store, tenant, at=NOW + 3)

    async def dead(**fields: object) -> list[str]:
        selector = DeadSelector(**fields)  # type: ignore[arg-type]
        return [t.id for t in await store.list_dead(tenant, selector, "", 10)]

    assert await dead(function=FN) == [a, c]
    assert await dead(function="nope") == []
    assert await dead(since=NOW + 2) == [b, c]
    assert await dead(until=NOW + 2) == [a]
    assert await dead(since=NOW + 2, until=NOW + 3) == [b]
    assert await dead(function=FN, since=NOW + 2) == [c]


async def test_list_dead_pages_after_the_last_id_seen(store: Store, tenant: str) -> None:
    ids = [await make_dead(store, tenant, at=NOW + i) for i in range(5)]

    pages, after = [], ""
    for _ in range(4):
        page = [t.id for t in await store.list_dead(tenant, DeadSelector(), after, 2)]
        pages.append(page)
        after = page[-1] if page else after

    assert pages == [ids[0:2], ids[2:4], ids[4:], []]


async def test_list_dead_hides_other_tenants_dead_tasks(
    store: Store, tenant: str, other: str
) -> None:
    mine = await make_dead(store, tenant)

    assert await store.list_dead(other, DeadSelector(), "", 10) == []
    assert [t.id for t in await store.list_dead(tenant, DeadSelector(), "", 10)] == [mine]


async def test_retry_dead_makes_a_dead_task_ready_with_a_new_allowance(
    store: Store, tenant: str
) -> None:
    task_id = await make_dead(store, tenant, at=NOW + 1)

    retried = await store.retry_dead(tenant, [task_id], {FN: 2}, NOW + 10)
    record = await store.get_task(tenant, task_id)

    assert retried == [task_id]
    assert record is not None
    assert (record.state, record.attempt, record.finished_at, record.error) == (
        READY,
        1,
        None,
        None,
    )
    assert await store.list_dead(tenant, DeadSelector(), "", 10) == []
    assert [e.kind for e in await store.list_history(tenant, task_id)] == ["retried"]
    # Two more attempts, counted from the retry: the series starts at the retry's time.
    (second,) = await claim(store, tenant, now=NOW + 11)
    assert (second.attempt, second.created_at) == (2, NOW + 10)
    lost_at = NOW + 11 + LEASE_S + 1
    assert [r.state for r in await store.reap_leases(lost_at, 100)] == [READY]
    (third,) = await claim(store, tenant, now=lost_at + 1)
    assert third.attempt == 3
    assert [r.state for r in await store.reap_leases(lost_at + LEASE_S + 2, 100)] == [DEAD]
    attempts = await store.list_attempts(tenant, task_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "failed"), (2, "lost"), (3, "lost")]


async def test_retry_dead_ignores_tasks_that_are_not_dead(store: Store, tenant: str) -> None:
    dead = await make_dead(store, tenant)
    done = await succeed(store, tenant)
    (running,) = await submit(store, tenant, new_task())
    await claim(store, tenant, worker="w1")
    (ready,) = await submit(store, tenant, new_task())
    (cancelled,) = await submit(store, tenant, new_task())
    assert len(await store.cancel_tasks(tenant, [cancelled], NOW)) == 1
    ids = [dead, done, running, ready, cancelled]

    retried = await store.retry_dead(tenant, [*ids, new_task_id()], {FN: 3}, NOW + 10)

    assert retried == [dead]
    assert await store.get_task_states(tenant, ids) == {
        dead: READY,
        done: SUCCEEDED,
        running: RUNNING,
        ready: READY,
        cancelled: CANCELLED,
    }
    assert await store.leased_to(tenant, "w1") == [(running, 1, NOW)]


async def test_retry_dead_leaves_other_tenants_dead_tasks_alone(
    store: Store, tenant: str, other: str
) -> None:
    task_id = await make_dead(store, tenant)

    assert await store.retry_dead(other, [task_id], {FN: 3}, NOW + 10) == []

    assert await state_of(store, tenant, task_id) == DEAD
    assert await store.list_history(tenant, task_id) == []


# -- leases held by a worker ------------------------------------------------------


async def test_leased_to_lists_the_running_tasks_of_one_worker(
    store: Store, tenant: str, other: str
) -> None:
    await submit(store, tenant, new_task(), new_task(), new_task())
    retried, held = await claim(store, tenant, worker="w1", limit=2)
    (theirs,) = await claim(store, tenant, worker="w2")
    retry = finish(retried, next_state=READY, outcome="failed", error_message="boom")
    assert await store.finish_attempts([retry], NOW + 3) == [ACCEPTED]
    (again,) = await claim(store, tenant, worker="w1", now=NOW + 4)
    await submit(store, tenant, new_task())  # ready: leased to nobody

    assert again.id == retried.id
    assert sorted(await store.leased_to(tenant, "w1")) == sorted(
        [(retried.id, 2, NOW + 4), (held.id, 1, NOW)]
    )
    assert await store.leased_to(tenant, "w2") == [(theirs.id, 1, NOW)]
    assert await store.leased_to(tenant, "w3") == []
    assert await store.leased_to(other, "w1") == []


async def test_release_tasks_hands_back_without_using_up_an_attempt(
    store: Store, tenant: str
) -> None:
    (task_id,) = await submit(store, tenant, new_task(max_attempts=2))
    (first,) = await claim(store, tenant, worker="w1")
    retry = finish(first, next_state=READY, outcome="failed", error_message="boom")
    assert await store.finish_attempts([retry], NOW + 3) == [ACCEPTED]
    (second,) = await claim(store, tenant, worker="w1", now=NOW + 4)

    released = await store.release_tasks(tenant, "w1", [(task_id, 2, NOW + 4)], NOW + 5)
    record = await store.get_task(tenant, task_id)

    assert second.attempt == 2
    assert released == [task_id]
    assert record is not None
    assert (record.state, record.lease_owner, record.lease_until) == (READY, None, None)
    assert await store.leased_to(tenant, "w1") == []
    assert await store.reap_leases(NOW + 4 + LEASE_S + 1, 100) == []
    assert [e.kind for e in await store.list_history(tenant, task_id)] == ["handed_back"]
    # The next claim runs the same attempt number again, and that one may still fail.
    (again,) = await claim(store, tenant, worker="w2", now=NOW + 6)
    assert (again.id, again.attempt) == (task_id, 2)
    assert [a.attempt for a in await store.list_attempts(tenant, task_id)] == [1]


async def test_release_tasks_ignores_a_wrong_worker_attempt_dispatch_or_tenant(
    store: Store, tenant: str, other: str
) -> None:
    (task_id,) = await submit(store, tenant, new_task())
    await claim(store, tenant, worker="w1")
    done = await succeed(store, tenant)

    wrong_worker = await store.release_tasks(tenant, "w2", [(task_id, 1, NOW)], NOW + 5)
    wrong_attempt = await store.release_tasks(tenant, "w1", [(task_id, 2, NOW)], NOW + 5)
    wrong_dispatch = await store.release_tasks(tenant, "w1", [(task_id, 1, NOW - 1)], NOW + 5)
    wrong_tenant = await store.release_tasks(other, "w1", [(task_id, 1, NOW)], NOW + 5)
    ended = await store.release_tasks(
        tenant, "w1", [(done, 1, NOW), (new_task_id(), 1, NOW)], NOW + 5
    )
    record = await store.get_task(tenant, task_id)

    assert (wrong_worker, wrong_attempt, wrong_dispatch, wrong_tenant, ended) == ([],) * 5
    assert record is not None
    assert (record.state, record.attempt, record.lease_owner) == (RUNNING, 1, "w1")
    assert await state_of(store, tenant, done) == SUCCEEDED
    assert await store.list_history(tenant, task_id) == []


async def test_a_late_hand_back_never_releases_a_newer_claim_of_the_same_attempt(
    store: Store, tenant: str
) -> None:
    (task_id,) = await submit(store, tenant, new_task())
    (first,) = await claim(store, tenant, worker="w1", now=NOW + 1)
    held = (first.id, first.attempt, first.dispatched_at)
    assert await store.release_tasks(tenant, "w1", [held], NOW + 2) == [task_id]
    (second,) = await claim(store, tenant, worker="w1", now=NOW + 3)
    assert (second.attempt, second.dispatched_at) == (first.attempt, NOW + 3)  # the same number

    late = await store.release_tasks(tenant, "w1", [held], NOW + 4)  # the first one, again
    record = await store.get_task(tenant, task_id)

    assert late == []
    assert record is not None
    assert (record.state, record.attempt, record.lease_owner) == (RUNNING, 1, "w1")
    assert record.dispatched_at == NOW + 3
    assert [e.kind for e in await store.list_history(tenant, task_id)] == ["handed_back"]
    assert await store.leased_to(tenant, "w1") == [(task_id, 1, NOW + 3)]


# -- states -----------------------------------------------------------------------


async def test_get_task_states_returns_the_state_of_each_known_task(
    store: Store, tenant: str
) -> None:
    dead = await make_dead(store, tenant)
    done = await succeed(store, tenant)
    (running,) = await submit(store, tenant, new_task())
    await claim(store, tenant)
    waiting, ready = scheduled_task(NOW + 60), new_task()
    await submit(store, tenant, waiting, ready)
    ids = [dead, done, running, waiting.id, ready.id]

    states = await store.get_task_states(tenant, [*ids, new_task_id()])

    assert states == {
        dead: DEAD,
        done: SUCCEEDED,
        running: RUNNING,
        waiting.id: SCHEDULED,
        ready.id: READY,
    }
    assert await store.get_task_states(tenant, []) == {}


async def test_retry_dead_takes_the_task_policy_then_the_function_then_the_default(
    store: Store, tenant: str
) -> None:
    own = msgspec.structs.replace(
        new_task(max_attempts=1), retry=msgspec.json.encode(RetryPolicy(max_attempts=2))
    )
    await submit(store, tenant, own)
    (claimed,) = await claim(store, tenant)
    died = finish(claimed, next_state=DEAD, outcome="failed", error_message="boom")
    assert await store.finish_attempts([died], NOW) == [ACCEPTED]
    by_function = await make_dead(store, tenant)
    unknown = await make_dead(store, tenant, "unregistered")

    await store.retry_dead(tenant, [own.id, by_function, unknown], {FN: 4}, NOW + 10)

    allowed = {}
    for task_id in (own.id, by_function, unknown):
        record = await store.get_task(tenant, task_id)
        assert record is not None
        allowed[task_id] = record.max_attempts - record.attempt
    assert allowed == {own.id: 2, by_function: 4, unknown: DEFAULT_MAX_ATTEMPTS}
    # Dead again and retried again: a fresh allowance of 4, not one grown by the past.
    await store.cancel_tasks(tenant, [own.id, unknown], NOW + 11)
    (again,) = await claim(store, tenant, now=NOW + 11)
    assert again.id == by_function
    died = finish(again, next_state=DEAD, outcome="failed", error_message="boom")
    assert await store.finish_attempts([died], NOW + 12) == [ACCEPTED]
    await store.retry_dead(tenant, [by_function], {FN: 4}, NOW + 13)
    record = await store.get_task(tenant, by_function)
    assert record is not None
    assert (record.attempt, record.max_attempts - record.attempt) == (2, 4)
