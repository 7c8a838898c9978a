"""The store contract: what the engine may rely on from every backend.

Each test runs once per backend (see conftest.py). Time is a fixed fake `NOW` passed to
every call, so expiry, leases and promotion are decided by arguments, never by waiting.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sluice.contract import FunctionConfig, RetryPolicy
from sluice.model import (
    DEAD,
    EXPIRED,
    READY,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    ClaimedTask,
    Finish,
    NewTask,
    new_task_id,
)
from sluice.store import (
    ACCEPTED,
    DUPLICATE,
    STALE,
    ClaimRequest,
    LeaseRenewal,
    Reaped,
    Store,
)
from sluice.store.sqlite import SQLiteStore
from sluice.store.sqlite.writer import MAX_ROWS_INLINE

NOW = 1_700_000_000.0
LEASE_S = 30.0
FN = "send"
PAYLOAD = b'{"args":[1],"kwargs":{}}'


def new_task(
    function: str = FN,
    *,
    priority: int = 5,
    stag: float = NOW,
    state: str = READY,
    run_at: float = NOW,
    key: str | None = None,
    max_attempts: int = 3,
    expires_at: float | None = None,
) -> NewTask:
    return NewTask(
        id=new_task_id(),
        function=function,
        payload=PAYLOAD,
        state=state,
        priority=priority,
        stag=stag,
        run_at=run_at,
        max_attempts=max_attempts,
        key=key,
        expires_at=expires_at,
    )


def scheduled_task(run_at: float, **fields: object) -> NewTask:
    return new_task(state=SCHEDULED, run_at=run_at, stag=run_at, **fields)  # type: ignore[arg-type]


async def submit(store: Store, tenant: str, *tasks: NewTask) -> list[str]:
    results = await store.submit_tasks(tenant, list(tasks), NOW)
    assert all(r.created for r in results)
    return [r.id for r in results]


async def claim(
    store: Store,
    tenant: str,
    *,
    worker: str = "w1",
    functions: tuple[str, ...] = (FN,),
    limit: int = 100,
    now: float = NOW,
) -> list[ClaimedTask]:
    request = ClaimRequest(tenant_id=tenant, worker=worker, functions=functions, limit=limit)
    (claimed,) = await store.claim_tasks([request], now, LEASE_S)
    return claimed


def finish(
    task: ClaimedTask,
    *,
    worker: str = "w1",
    attempt: int | None = None,
    next_state: str = SUCCEEDED,
    outcome: str = "succeeded",
    run_at: float | None = None,
    result: bytes | None = None,
    error_message: str | None = None,
) -> Finish:
    return Finish(
        tenant_id=task.tenant_id,
        task_id=task.id,
        attempt=task.attempt if attempt is None else attempt,
        worker=worker,
        next_state=next_state,
        outcome=outcome,
        dispatched_at=task.dispatched_at,
        started_at=task.dispatched_at + 1,
        finished_at=task.dispatched_at + 2,
        run_at=run_at,
        result=result,
        error_type="ValueError" if error_message else None,
        error_message=error_message,
    )


async def state_of(store: Store, tenant: str, task_id: str) -> str:
    task = await store.get_task(tenant, task_id)
    assert task is not None
    return task.state


@pytest.fixture
async def tenant(store: Store) -> str:
    return (await store.create_tenant("acme", NOW)).id


@pytest.fixture
async def other(store: Store) -> str:
    return (await store.create_tenant("globex", NOW)).id


# -- tenants, keys, functions -----------------------------------------------------


async def test_created_tenant_is_found_by_id_and_by_name(store: Store) -> None:
    created = await store.create_tenant("acme", NOW)

    assert created.name == "acme"
    assert created.created_at == NOW
    assert await store.get_tenant(created.id) == created
    assert await store.get_tenant_by_name("acme") == created
    assert await store.get_tenant("nope") is None
    assert await store.get_tenant_by_name("nope") is None


async def test_find_api_key_returns_the_tenant_of_a_stored_hash(
    store: Store, tenant: str, other: str
) -> None:
    await store.create_api_key(tenant, "hash-a", "sk_a", NOW)
    await store.create_api_key(other, "hash-b", "sk_b", NOW)

    assert await store.find_api_key("hash-a") == tenant
    assert await store.find_api_key("hash-b") == other


async def test_find_api_key_returns_none_for_an_unknown_hash(store: Store, tenant: str) -> None:
    await store.create_api_key(tenant, "hash-a", "sk_a", NOW)

    assert await store.find_api_key("hash-unknown") is None


async def test_upsert_functions_then_list_functions_round_trips(store: Store, tenant: str) -> None:
    resize = FunctionConfig(
        name="resize",
        retry=RetryPolicy(max_attempts=4, base_s=2.0, min_backoff_s=0.5, cap_s=60.0),
        timeout_s=12.5,
        priority=8,
        ttl_s=600.0,
        tags=["images"],
    )
    send = FunctionConfig(name="send")

    await store.upsert_functions(tenant, [send, resize], NOW)
    assert [r.config for r in await store.list_functions(tenant)] == [resize, send]

    changed = FunctionConfig(name="send", priority=1, timeout_s=3.0)
    await store.upsert_functions(tenant, [changed], NOW + 1)
    assert [r.config for r in await store.list_functions(tenant)] == [resize, changed]


# -- submit and read --------------------------------------------------------------


async def test_submit_then_get_returns_the_task(store: Store, tenant: str) -> None:
    task = NewTask(
        id=new_task_id(),
        function=FN,
        payload=PAYLOAD,
        state=READY,
        priority=7,
        stag=NOW,
        run_at=NOW,
        max_attempts=4,
        timeout_s=9.5,
        key="order-1",
        tags='["a","b"]',
        expires_at=NOW + 600,
    )

    (result,) = await store.submit_tasks(tenant, [task], NOW)
    record = await store.get_task(tenant, task.id)

    assert (result.id, result.created, result.state, result.run_at) == (task.id, True, READY, NOW)
    assert record is not None
    assert (record.id, record.tenant_id, record.function) == (task.id, tenant, FN)
    assert record.payload == PAYLOAD
    assert (record.state, record.priority, record.key, record.tags) == (
        READY,
        7,
        "order-1",
        '["a","b"]',
    )
    assert (record.attempt, record.max_attempts, record.timeout_s) == (0, 4, 9.5)
    assert (record.run_at, record.expires_at) == (NOW, NOW + 600)
    assert (record.created_at, record.ready_at) == (NOW, NOW)
    assert record.dispatched_at is None
    assert record.lease_owner is None
    assert record.lease_until is None
    assert record.finished_at is None
    assert record.result is None
    assert record.error is None


async def test_submitted_scheduled_task_has_no_ready_time(store: Store, tenant: str) -> None:
    (task_id,) = await submit(store, tenant, scheduled_task(NOW + 60))

    record = await store.get_task(tenant, task_id)

    assert record is not None
    assert (record.state, record.run_at, record.ready_at) == (SCHEDULED, NOW + 60, None)


async def test_get_task_returns_none_for_an_unknown_id(store: Store, tenant: str) -> None:
    assert await store.get_task(tenant, new_task_id()) is None


async def test_keyed_submit_returns_existing_task(store: Store, tenant: str) -> None:
    first = new_task(key="order-1")
    second = scheduled_task(NOW + 60, key="order-1")
    await submit(store, tenant, first)

    (result,) = await store.submit_tasks(tenant, [second], NOW + 1)

    assert (result.id, result.created, result.state, result.run_at) == (
        first.id,
        False,
        READY,
        NOW,
    )
    assert await store.get_task(tenant, second.id) is None


async def test_keyed_submit_within_one_batch_returns_the_first_task(
    store: Store, tenant: str
) -> None:
    first, plain, again = new_task(key="k"), new_task(), new_task(key="k")

    results = await store.submit_tasks(tenant, [first, plain, again], NOW)

    assert [(r.id, r.created) for r in results] == [
        (first.id, True),
        (plain.id, True),
        (first.id, False),
    ]
    assert await store.get_task(tenant, again.id) is None


async def test_same_key_in_two_tenants_makes_two_tasks(
    store: Store, tenant: str, other: str
) -> None:
    mine, theirs = new_task(key="k"), new_task(key="k")

    (a,) = await store.submit_tasks(tenant, [mine], NOW)
    (b,) = await store.submit_tasks(other, [theirs], NOW)

    assert (a.id, a.created) == (mine.id, True)
    assert (b.id, b.created) == (theirs.id, True)


async def test_concurrent_submits_all_commit_and_are_readable(store: Store, tenant: str) -> None:
    tasks = [new_task() for _ in range(200)]

    results = await asyncio.gather(*(store.submit_tasks(tenant, [t], NOW) for t in tasks))

    assert [r.id for (r,) in results] == [t.id for t in tasks]
    assert all(r.created for (r,) in results)
    states = await store.get_task_states(tenant, [t.id for t in tasks])
    assert states == {t.id: READY for t in tasks}


# -- claim ------------------------------------------------------------------------


async def test_claim_takes_highest_priority_first_then_fifo_by_stag(
    store: Store, tenant: str
) -> None:
    low = new_task(priority=0, stag=NOW)
    mid_late = new_task(priority=5, stag=NOW + 1)
    top_late = new_task(priority=9, stag=NOW + 3)
    mid_early = new_task(priority=5, stag=NOW)
    top_early = new_task(priority=9, stag=NOW + 2)
    await submit(store, tenant, low, mid_late, top_late, mid_early, top_early)

    # One task per claim, so the order is the store's choice, not the list's order.
    order = [c.id for _ in range(5) for c in await claim(store, tenant, limit=1)]

    assert order == [top_early.id, top_late.id, mid_early.id, mid_late.id, low.id]


async def test_one_claim_returns_its_tasks_in_fair_order(store: Store, tenant: str) -> None:
    low = new_task(priority=0, stag=NOW)
    top_late = new_task(priority=9, stag=NOW + 3)
    mid = new_task(priority=5, stag=NOW)
    top_early = new_task(priority=9, stag=NOW + 2)
    await submit(store, tenant, low, top_late, mid, top_early)

    claimed = await claim(store, tenant, limit=10)

    assert [c.id for c in claimed] == [top_early.id, top_late.id, mid.id, low.id]


async def test_claim_under_a_limit_takes_the_most_urgent_tasks(store: Store, tenant: str) -> None:
    low, mid = new_task(priority=0), new_task(priority=5, stag=NOW + 1)
    top_late, top_early = new_task(priority=9, stag=NOW + 3), new_task(priority=9, stag=NOW + 2)
    await submit(store, tenant, low, mid, top_late, top_early)

    claimed = await claim(store, tenant, limit=3)

    assert sorted(c.id for c in claimed) == sorted([top_early.id, top_late.id, mid.id])
    assert await state_of(store, tenant, low.id) == READY


async def test_claim_never_returns_more_than_the_limit(store: Store, tenant: str) -> None:
    ids = await submit(store, tenant, *(new_task() for _ in range(5)))

    batches = [await claim(store, tenant, limit=2) for _ in range(4)]

    assert [len(b) for b in batches] == [2, 2, 1, 0]
    assert sorted(c.id for b in batches for c in b) == sorted(ids)


async def test_claim_only_returns_tasks_of_the_requested_functions(
    store: Store, tenant: str
) -> None:
    send, resize, other_fn = new_task("send"), new_task("resize"), new_task("other")
    await submit(store, tenant, send, resize, other_fn)

    claimed = await claim(store, tenant, functions=("send", "resize"))

    assert sorted(c.id for c in claimed) == sorted([send.id, resize.id])
    assert await state_of(store, tenant, other_fn.id) == READY


async def test_claim_skips_expired_tasks(store: Store, tenant: str) -> None:
    expired = new_task(expires_at=NOW + 5)
    fresh = new_task(expires_at=NOW + 100)
    await submit(store, tenant, expired, fresh)

    claimed = await claim(store, tenant, now=NOW + 10)

    assert [c.id for c in claimed] == [fresh.id]
    assert await state_of(store, tenant, expired.id) == READY


async def test_claimed_task_is_running_with_attempt_one_and_a_lease(
    store: Store, tenant: str
) -> None:
    task = new_task(priority=7, max_attempts=4)
    await submit(store, tenant, task)

    (claimed,) = await claim(store, tenant, worker="w1")
    record = await store.get_task(tenant, task.id)

    assert (claimed.tenant_id, claimed.id, claimed.function) == (tenant, task.id, FN)
    assert claimed.payload == PAYLOAD
    assert (claimed.attempt, claimed.max_attempts, claimed.priority) == (1, 4, 7)
    assert (claimed.created_at, claimed.dispatched_at) == (NOW, NOW)
    assert claimed.lease_until == NOW + LEASE_S
    assert record is not None
    assert (record.state, record.attempt) == (RUNNING, 1)
    assert (record.lease_owner, record.lease_until) == ("w1", NOW + LEASE_S)
    assert await claim(store, tenant, worker="w2") == []


async def test_one_claim_call_serves_several_requests_without_overlap(
    store: Store, tenant: str
) -> None:
    ids = await submit(store, tenant, *(new_task() for _ in range(3)))
    requests = [
        ClaimRequest(tenant_id=tenant, worker="w1", functions=(FN,), limit=2),
        ClaimRequest(tenant_id=tenant, worker="w2", functions=(FN,), limit=2),
    ]

    first, second = await store.claim_tasks(requests, NOW, LEASE_S)

    assert (len(first), len(second)) == (2, 1)
    assert sorted(c.id for c in first + second) == sorted(ids)


async def test_finished_tasks_leave_the_ready_set(store: Store, tenant: str) -> None:
    await submit(store, tenant, *(new_task() for _ in range(300)))
    claimed = await claim(store, tenant, limit=1000)
    outcomes = await store.finish_attempts([finish(c) for c in claimed], NOW)
    late = new_task()
    await submit(store, tenant, late)

    claimed_after = await claim(store, tenant, limit=1000)

    assert len(claimed) == 300
    assert outcomes == [ACCEPTED] * 300
    assert [c.id for c in claimed_after] == [late.id]


# -- finish (fencing) -------------------------------------------------------------


async def test_finish_is_accepted_for_the_lease_holder(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant)

    outcomes = await store.finish_attempts([finish(task, result=b'{"ok":1}')], NOW + 3)
    record = await store.get_task(tenant, task.id)
    (attempt,) = await store.list_attempts(tenant, task.id)

    assert outcomes == [ACCEPTED]
    assert record is not None
    assert (record.state, record.finished_at, record.result) == (SUCCEEDED, NOW + 2, b'{"ok":1}')
    assert (record.lease_owner, record.lease_until, record.error) == (None, None, None)
    assert record.run_at == NOW  # finishing never moves the original run time
    assert (attempt.task_id, attempt.attempt, attempt.worker) == (task.id, 1, "w1")
    assert (attempt.dispatched_at, attempt.started_at, attempt.finished_at) == (
        NOW,
        NOW + 1,
        NOW + 2,
    )
    assert attempt.outcome == "succeeded"


async def test_finish_from_a_wrong_worker_is_stale_and_recorded(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant, worker="w1")

    outcomes = await store.finish_attempts([finish(task, worker="w2")], NOW + 3)
    record = await store.get_task(tenant, task.id)
    history = await store.list_history(tenant, task.id)

    assert outcomes == [STALE]
    assert record is not None
    assert (record.state, record.lease_owner) == (RUNNING, "w1")
    assert await store.list_attempts(tenant, task.id) == []
    assert [(e.kind, e.at, e.detail) for e in history] == [
        ("stale_result", NOW + 3, "attempt 1 by w2")
    ]


async def test_a_result_for_another_tenants_task_leaves_no_history(
    store: Store, tenant: str, other: str
) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant, worker="w1")
    forged = msgspec.structs.replace(finish(task, worker="w9"), tenant_id=other)
    never = msgspec.structs.replace(finish(task, worker="w9"), task_id=new_task_id())

    assert await store.finish_attempts([forged, never], NOW + 3) == [STALE, STALE]
    assert await store.list_history(other, task.id) == []
    assert await store.list_history(tenant, never.task_id) == []
    assert await store.list_history(tenant, task.id) == []
    assert await state_of(store, tenant, task.id) == RUNNING


async def test_finish_for_an_old_attempt_is_stale_and_recorded(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    (first,) = await claim(store, tenant, worker="w1")
    retry = finish(first, next_state=READY, outcome="failed", error_message="boom")
    assert await store.finish_attempts([retry], NOW + 3) == [ACCEPTED]
    (second,) = await claim(store, tenant, worker="w2", now=NOW + 4)

    outcomes = await store.finish_attempts([finish(second, attempt=1, worker="w2")], NOW + 5)
    record = await store.get_task(tenant, second.id)
    history = await store.list_history(tenant, second.id)

    assert second.attempt == 2
    assert outcomes == [STALE]
    assert record is not None
    assert (record.state, record.attempt, record.lease_owner) == (RUNNING, 2, "w2")
    assert [(e.kind, e.detail) for e in history] == [("stale_result", "attempt 1 by w2")]


async def test_late_result_of_a_lost_attempt_is_stale_not_duplicate(
    store: Store, tenant: str
) -> None:
    await submit(store, tenant, new_task())
    (first,) = await claim(store, tenant, worker="w1")
    await store.reap_leases(NOW + LEASE_S + 1, 100)
    (second,) = await claim(store, tenant, worker="w2", now=NOW + LEASE_S + 2)

    late = await store.finish_attempts([finish(first, worker="w1")], NOW + LEASE_S + 3)
    history = await store.list_history(tenant, first.id)

    assert second.attempt == 2
    assert late == [STALE]
    assert [e.kind for e in history] == ["lease_lost", "stale_result"]
    assert await state_of(store, tenant, first.id) == RUNNING


async def test_a_batch_of_finishes_commits_together_and_sorts_out_a_stale_one(
    store: Store, tenant: str
) -> None:
    await submit(store, tenant, new_task(), new_task(), new_task())
    a, b, c = await claim(store, tenant, worker="w1")
    clean = await store.finish_attempts([finish(a, result=b"1"), finish(b, result=b"2")], NOW + 3)
    mixed = await store.finish_attempts(
        [finish(c, result=b"3"), finish(b, result=b"2"), finish(a, worker="w9")], NOW + 4
    )

    assert clean == [ACCEPTED, ACCEPTED]
    assert mixed == [ACCEPTED, DUPLICATE, STALE]
    for task, result in ((a, b"1"), (b, b"2"), (c, b"3")):
        record = await store.get_task(tenant, task.id)
        assert record is not None
        assert (record.state, record.result) == (SUCCEEDED, result)
        assert [x.outcome for x in await store.list_attempts(tenant, task.id)] == ["succeeded"]
    assert [e.kind for e in await store.list_history(tenant, a.id)] == ["stale_result"]


async def test_same_result_sent_twice_is_duplicate(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant)
    done = finish(task, result=b"1")

    first = await store.finish_attempts([done], NOW + 3)
    again = await store.finish_attempts([done], NOW + 4)

    assert (first, again) == ([ACCEPTED], [DUPLICATE])
    assert len(await store.list_attempts(tenant, task.id)) == 1
    assert await store.list_history(tenant, task.id) == []
    assert await state_of(store, tenant, task.id) == SUCCEEDED


async def test_failed_attempt_retried_at_once_is_claimable_as_attempt_two(
    store: Store, tenant: str
) -> None:
    await submit(store, tenant, new_task())
    (first,) = await claim(store, tenant)
    retry = finish(first, next_state=READY, outcome="failed", error_message="boom")

    assert await store.finish_attempts([retry], NOW + 3) == [ACCEPTED]
    record = await store.get_task(tenant, first.id)
    (second,) = await claim(store, tenant, now=NOW + 4)

    assert record is not None
    assert (record.state, record.error, record.finished_at) == (READY, "boom", None)
    assert (second.id, second.attempt) == (first.id, 2)
    assert [a.outcome for a in await store.list_attempts(tenant, first.id)] == ["failed"]


async def test_finish_as_dead_is_terminal(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant)
    dead = finish(task, next_state=DEAD, outcome="rejected", error_message="bad input")

    assert await store.finish_attempts([dead], NOW + 3) == [ACCEPTED]
    record = await store.get_task(tenant, task.id)

    assert record is not None
    assert (record.state, record.error, record.finished_at) == (DEAD, "bad input", NOW + 2)
    assert await claim(store, tenant, now=NOW + 4) == []


# -- timers: scheduled tasks ------------------------------------------------------


async def test_scheduled_retry_stays_out_of_claims_until_promoted(
    store: Store, tenant: str
) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant)
    retry = finish(
        task, next_state=SCHEDULED, outcome="failed", run_at=NOW + 60, error_message="boom"
    )

    assert await store.finish_attempts([retry], NOW + 3) == [ACCEPTED]
    record = await store.get_task(tenant, task.id)
    assert record is not None
    assert (record.state, record.run_at, record.attempt) == (SCHEDULED, NOW + 60, 1)
    assert await claim(store, tenant, now=NOW + 61) == []
    assert await store.promote_due(NOW + 59, 100) == []
    assert [p.tenant_id for p in await store.promote_due(NOW + 60, 100)] == [tenant]
    (again,) = await claim(store, tenant, now=NOW + 61)
    assert (again.id, again.attempt) == (task.id, 2)


async def test_promote_due_spans_tenants_and_respects_the_limit(
    store: Store, tenant: str, other: str
) -> None:
    await submit(store, tenant, scheduled_task(NOW + 1), scheduled_task(NOW + 3))
    await submit(store, other, scheduled_task(NOW + 2))

    first = await store.promote_due(NOW + 10, 2)
    rest = await store.promote_due(NOW + 10, 2)

    assert sorted(p.tenant_id for p in first) == sorted([tenant, other])
    assert [(p.tenant_id, p.function, p.priority) for p in rest] == [(tenant, FN, 5)]
    assert await store.promote_due(NOW + 10, 2) == []


async def test_promote_tasks_only_promotes_scheduled_tasks_that_are_due(
    store: Store, tenant: str
) -> None:
    due, later, ready = scheduled_task(NOW + 5), scheduled_task(NOW + 100), new_task()
    await submit(store, tenant, due, later, ready)
    ids = [due.id, later.id, ready.id]

    promoted = await store.promote_tasks(ids, NOW + 5)
    record = await store.get_task(tenant, due.id)

    assert [(p.tenant_id, p.function) for p in promoted] == [(tenant, FN)]
    assert await store.get_task_states(tenant, ids) == {
        due.id: READY,
        later.id: SCHEDULED,
        ready.id: READY,
    }
    assert record is not None
    assert record.ready_at == NOW + 5
    assert await store.promote_tasks(ids, NOW + 5) == []


async def test_due_soon_returns_soonest_first(store: Store, tenant: str, other: str) -> None:
    t30, t10, t500 = scheduled_task(NOW + 30), scheduled_task(NOW + 10), scheduled_task(NOW + 500)
    t20 = scheduled_task(NOW + 20)
    await submit(store, tenant, t30, t10, t500, new_task())
    await submit(store, other, t20)

    due = await store.due_soon(NOW + 60, 10)
    first_two = await store.due_soon(NOW + 60, 2)

    assert due == [
        (NOW + 10, tenant, t10.id),
        (NOW + 20, other, t20.id),
        (NOW + 30, tenant, t30.id),
    ]
    assert first_two == due[:2]


# -- timers: leases and expiry ----------------------------------------------------


async def test_reap_leases_puts_an_expired_lease_back_to_ready(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant, worker="w1")

    early = await store.reap_leases(NOW + LEASE_S - 1, 100)
    reaped = await store.reap_leases(NOW + LEASE_S + 1, 100)
    record = await store.get_task(tenant, task.id)
    (attempt,) = await store.list_attempts(tenant, task.id)
    history = await store.list_history(tenant, task.id)

    assert early == []
    assert reaped == [Reaped(tenant, task.id, READY, function=FN, attempt=1, max_attempts=3)]
    assert record is not None
    assert (record.state, record.attempt, record.lease_owner, record.lease_until) == (
        READY,
        1,
        None,
        None,
    )
    assert (attempt.attempt, attempt.worker, attempt.outcome) == (1, "w1", "lost")
    assert attempt.finished_at == NOW + LEASE_S + 1
    assert [(e.kind, e.detail) for e in history] == [("lease_lost", "w1")]
    assert await store.reap_leases(NOW + LEASE_S + 1, 100) == []
    (again,) = await claim(store, tenant, worker="w2", now=NOW + LEASE_S + 2)
    assert again.attempt == 2


async def test_reap_leases_kills_a_task_on_its_last_attempt(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task(max_attempts=1))
    (task,) = await claim(store, tenant)

    reaped = await store.reap_leases(NOW + LEASE_S + 1, 100)
    record = await store.get_task(tenant, task.id)

    assert reaped == [Reaped(tenant, task.id, DEAD, function=FN, attempt=1, max_attempts=1)]
    assert record is not None
    assert (record.state, record.finished_at) == (DEAD, NOW + LEASE_S + 1)
    assert record.error is not None
    assert [a.outcome for a in await store.list_attempts(tenant, task.id)] == ["lost"]
    assert await claim(store, tenant, now=NOW + LEASE_S + 2) == []


async def test_extend_leases_keeps_a_task_from_being_reaped(store: Store, tenant: str) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant, worker="w1")

    await store.extend_leases([LeaseRenewal(tenant, "w1", (task.id,))], NOW + 90)
    reaped = await store.reap_leases(NOW + 60, 100)
    record = await store.get_task(tenant, task.id)

    assert reaped == []
    assert record is not None
    assert (record.state, record.lease_until) == (RUNNING, NOW + 90)


async def test_extend_leases_ignores_tasks_leased_to_another_worker(
    store: Store, tenant: str, other: str
) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant, worker="w1")

    await store.extend_leases(
        [LeaseRenewal(tenant, "w2", (task.id,)), LeaseRenewal(other, "w1", (task.id,))], NOW + 90
    )
    reaped = await store.reap_leases(NOW + 60, 100)

    assert [(r.task_id, r.state, r.attempt) for r in reaped] == [(task.id, READY, 1)]


async def test_expire_tasks_expires_waiting_tasks_past_their_deadline(
    store: Store, tenant: str
) -> None:
    running = new_task(expires_at=NOW + 10)
    await submit(store, tenant, running)
    await claim(store, tenant)
    ready = new_task(expires_at=NOW + 10)
    waiting = scheduled_task(NOW + 5, expires_at=NOW + 10)
    later = new_task(expires_at=NOW + 100)
    forever = new_task()
    await submit(store, tenant, ready, waiting, later, forever)

    expired = await store.expire_tasks(NOW + 10, 100)
    record = await store.get_task(tenant, ready.id)
    ids = [running.id, ready.id, waiting.id, later.id, forever.id]

    assert sorted(expired) == sorted([(tenant, ready.id), (tenant, waiting.id)])
    assert await store.get_task_states(tenant, ids) == {
        running.id: RUNNING,
        ready.id: EXPIRED,
        waiting.id: EXPIRED,
        later.id: READY,
        forever.id: READY,
    }
    assert record is not None
    assert record.finished_at == NOW + 10
    assert [e.kind for e in await store.list_history(tenant, ready.id)] == ["expired"]
    assert await store.expire_tasks(NOW + 10, 100) == []


async def test_a_task_that_started_is_not_expired_and_its_retry_still_runs(
    store: Store, tenant: str
) -> None:
    await submit(store, tenant, new_task(expires_at=NOW + 10))
    (first,) = await claim(store, tenant)
    retry = finish(first, next_state=READY, outcome="failed", error_message="boom")
    assert await store.finish_attempts([retry], NOW + 3) == [ACCEPTED]

    assert await store.expire_tasks(NOW + 20, 100) == []
    (again,) = await claim(store, tenant, now=NOW + 21)
    assert (again.id, again.attempt) == (first.id, 2)


# -- tenant isolation: every read -------------------------------------------------


async def lose_a_lease(store: Store, tenant: str) -> str:
    """A task with history: one lost attempt and its lease_lost entry."""
    (task_id,) = await submit(store, tenant, new_task())
    await claim(store, tenant)
    assert len(await store.reap_leases(NOW + LEASE_S + 1, 100)) == 1
    return task_id


async def test_get_task_hides_other_tenants_tasks(store: Store, tenant: str, other: str) -> None:
    (task_id,) = await submit(store, tenant, new_task())

    assert await store.get_task(other, task_id) is None
    assert await store.get_task(tenant, task_id) is not None


async def test_get_task_states_hides_other_tenants_tasks(
    store: Store, tenant: str, other: str
) -> None:
    (mine,) = await submit(store, tenant, new_task())
    (theirs,) = await submit(store, other, new_task())

    assert await store.get_task_states(other, [mine, theirs]) == {theirs: READY}
    assert await store.get_task_states(tenant, [mine, theirs]) == {mine: READY}


async def test_list_attempts_hides_other_tenants_attempts(
    store: Store, tenant: str, other: str
) -> None:
    task_id = await lose_a_lease(store, tenant)

    assert await store.list_attempts(other, task_id) == []
    assert len(await store.list_attempts(tenant, task_id)) == 1


async def test_list_history_hides_other_tenants_history(
    store: Store, tenant: str, other: str
) -> None:
    task_id = await lose_a_lease(store, tenant)

    assert await store.list_history(other, task_id) == []
    assert len(await store.list_history(tenant, task_id)) == 1


async def test_claim_tasks_takes_only_the_requesting_tenants_tasks(
    store: Store, tenant: str, other: str
) -> None:
    (mine,) = await submit(store, tenant, new_task())

    assert await claim(store, other) == []
    assert [c.id for c in await claim(store, tenant)] == [mine]


async def test_list_functions_hides_other_tenants_functions(
    store: Store, tenant: str, other: str
) -> None:
    await store.upsert_functions(tenant, [FunctionConfig(name="mine")], NOW)
    await store.upsert_functions(other, [FunctionConfig(name="theirs")], NOW)

    assert [f.config.name for f in await store.list_functions(tenant)] == ["mine"]
    assert [f.config.name for f in await store.list_functions(other)] == ["theirs"]


async def test_finish_from_another_tenant_leaves_the_task_alone(
    store: Store, tenant: str, other: str
) -> None:
    await submit(store, tenant, new_task())
    (task,) = await claim(store, tenant, worker="w1")
    impostor = Finish(
        tenant_id=other,
        task_id=task.id,
        attempt=task.attempt,
        worker="w1",
        next_state=SUCCEEDED,
        outcome="succeeded",
        dispatched_at=None,
        started_at=None,
        finished_at=NOW + 2,
    )

    outcomes = await store.finish_attempts([impostor], NOW + 3)

    assert outcomes == [STALE]
    assert await state_of(store, tenant, task.id) == RUNNING
    assert await store.list_attempts(tenant, task.id) == []
    assert await store.list_history(tenant, task.id) == []


# -- SQLite: the writer group-commits ----------------------------------------------


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "sluice.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class HeldWriter:
    """Holds the writer thread inside one operation so later operations queue behind it,
    and records every statement the write connection runs from then on."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.statements: list[str] = []
        self._busy, self._release = threading.Event(), threading.Event()
        self._held: asyncio.Future[None] | None = None

    def _hold(self, conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(self.statements.append)
        self._busy.set()
        self._release.wait()

    async def __aenter__(self) -> HeldWriter:
        self._held = self.store._writer.submit(self._hold)
        await asyncio.get_running_loop().run_in_executor(None, self._busy.wait)
        return self

    async def let_go(self) -> None:
        self._release.set()

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._held is not None
        await self._held


async def test_sqlite_writer_commits_queued_submits_in_one_transaction(
    sqlite_store: SQLiteStore,
) -> None:
    tenant = (await sqlite_store.create_tenant("acme", NOW)).id
    tasks = [new_task() for _ in range(200)]

    async with HeldWriter(sqlite_store) as writer:
        # gather starts the submits in order, so all 200 are queued before let_go runs.
        *results, _ = await asyncio.gather(
            *(sqlite_store.submit_tasks(tenant, [t], NOW) for t in tasks), writer.let_go()
        )

    assert all(r[0].created for r in results)
    assert await sqlite_store.get_task_states(tenant, [t.id for t in tasks]) == {
        t.id: READY for t in tasks
    }
    # One commit closes the held batch, one more commits all 200 submits.
    assert writer.statements.count("COMMIT") == 2


async def test_sqlite_writer_commits_the_rest_of_a_batch_when_one_operation_fails(
    sqlite_store: SQLiteStore,
) -> None:
    tenant = (await sqlite_store.create_tenant("acme", NOW)).id
    tasks = [new_task() for _ in range(20)]
    same_id = msgspec.structs.replace(new_task(), id=tasks[0].id)

    async with HeldWriter(sqlite_store) as writer:
        *results, failed, _ = await asyncio.gather(
            *(sqlite_store.submit_tasks(tenant, [t], NOW) for t in tasks),
            sqlite_store.submit_tasks(tenant, [same_id], NOW),
            writer.let_go(),
            return_exceptions=True,
        )

    assert isinstance(failed, sqlite3.IntegrityError)
    assert all(not isinstance(r, BaseException) and r[0].created for r in results)
    assert await sqlite_store.get_task_states(tenant, [t.id for t in tasks]) == {
        t.id: READY for t in tasks
    }


async def test_sqlite_writes_leave_the_event_loop_while_a_checkpoint_runs(
    sqlite_store: SQLiteStore,
) -> None:
    """A small write runs inline on the loop when the writer is idle, but not while the
    checkpoint thread checkpoints: a commit may then wait on its locks (writer.py)."""
    await idle(sqlite_store)  # the flag is this test's alone: the thread would clear it
    writer = sqlite_store._writer
    here = threading.get_ident()
    assert await writer.submit(lambda conn: threading.get_ident(), small=True) == here
    writer.checkpointing.set()
    try:
        assert await writer.submit(lambda conn: threading.get_ident(), small=True) != here
    finally:
        writer.checkpointing.clear()
    # Inline again once that commit is settled on the loop (a queued call, soon after).
    deadline = time.monotonic() + 10
    while writer._unsettled and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    assert await writer.submit(lambda conn: threading.get_ident(), small=True) == here


async def idle(store: SQLiteStore) -> None:
    """No background checkpoint from now on, and the writer's last batch settled: a write
    may then run inline on the loop (writer.py `_may_inline`)."""
    store._stopping.set()
    store._checkpointer.join()
    deadline = time.monotonic() + 10
    while store._writer._unsettled and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    assert not store._writer._unsettled and not store._writer.checkpointing.is_set()


async def test_sqlite_small_writes_of_one_loop_turn_commit_together_on_the_loop(
    sqlite_store: SQLiteStore,
) -> None:
    """The first small write of a turn of the event loop commits at once (a lone submit
    waits for nothing); the others asked for in that turn commit together at its end,
    still on the loop: 20 producers' submits that arrive together make 2 commits, not 20.
    Past MAX_ROWS_INLINE rows in one turn, they go to the writer thread instead."""
    tenant = (await sqlite_store.create_tenant("acme", NOW)).id
    writer = sqlite_store._writer
    here = threading.get_ident()
    seen: list[tuple[int, str]] = []
    await writer.submit(
        lambda conn: conn.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql))),
    )  # fmt: skip
    await idle(sqlite_store)
    seen.clear()
    tasks = [new_task() for _ in range(20)]
    # gather starts each submit in the same turn of the loop, as 20 streams' frames are.
    results = await asyncio.gather(*(sqlite_store.submit_tasks(tenant, [t], NOW) for t in tasks))

    assert all(r.created for (r,) in results)
    assert [sql for _, sql in seen].count("COMMIT") == 2
    assert {thread for thread, _ in seen} == {here}

    await idle(sqlite_store)
    seen.clear()
    many = [new_task() for _ in range(MAX_ROWS_INLINE + 10)]
    results = await asyncio.gather(*(sqlite_store.submit_tasks(tenant, [t], NOW) for t in many))
    assert all(r.created for (r,) in results)
    assert [sql for thread, sql in seen if thread == here].count("COMMIT") == 1  # the first
    assert [sql for thread, sql in seen if thread != here].count("COMMIT") >= 1
    assert await sqlite_store.get_task_states(tenant, [t.id for t in tasks + many]) == {
        t.id: READY for t in tasks + many
    }


async def test_a_loop_turns_small_writes_with_one_failing_go_to_the_thread_which_commits_the_rest(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One of a turn's small writes fails: nothing of the inline batch is committed, and
    the writer thread runs them again, each alone (where a lock may be waited out): no
    BEGIN that may wait runs on the event loop, and the others still commit."""
    from sluice.store.sqlite import writer as writer_module

    writer, here = sqlite_store._writer, threading.get_ident()
    begins: list[tuple[bool, bool]] = []  # (on the loop, patient)
    begin = writer_module._begin

    def watched(conn: sqlite3.Connection, patient: bool = True) -> bool:
        begins.append((threading.get_ident() == here, patient))
        return begin(conn, patient)

    monkeypatch.setattr(writer_module, "_begin", watched)

    def failing(conn: sqlite3.Connection) -> None:
        raise ValueError("this write fails")

    first = writer.submit(lambda conn: 0, small=True)  # the turn's first: at once
    others = [writer.submit(lambda conn, i=i: i, small=True) for i in range(1, 21)]
    failed = writer.submit(failing, small=True)
    assert await asyncio.gather(first, *others) == list(range(21))
    with pytest.raises(ValueError, match="this write fails"):
        await failed
    assert (True, True) not in begins  # patient BEGINs ran on the writer thread only
    assert (False, True) in begins


class RacyBusy:
    """The writer's lock, with the writer thread made to finish a batch (and let the
    lock go) between the loop's look at the writer and its taking the lock: the
    interleaving the GIL allows there."""

    def __init__(self, writer: Any) -> None:
        self.lock, self.writer, self.armed = threading.Lock(), writer, False

    def acquire(self, blocking: bool = True) -> bool:
        if self.armed and not blocking:
            self.armed = False
            deadline = time.monotonic() + 10
            while not self.writer._unsettled and time.monotonic() < deadline:
                time.sleep(0.001)  # the thread commits its batch meanwhile
        return self.lock.acquire(blocking)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


async def test_an_inline_write_never_finishes_before_one_committed_ahead_of_it(
    sqlite_store: SQLiteStore,
) -> None:
    """The thread may commit a batch between the loop's look at the writer and its taking
    the lock: the inline write looks again under the lock, so it is not seen to finish
    before the write the thread committed ahead of it (its answer still on its way)."""
    writer = sqlite_store._writer
    busy = writer._busy = RacyBusy(writer)
    started, go = threading.Event(), threading.Event()

    def held(conn: sqlite3.Connection) -> str:
        started.set()
        go.wait(10)
        return "ahead"

    ahead = writer.submit(held)  # not small: the thread
    deadline = time.monotonic() + 10
    while not started.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    busy.armed = True
    go.set()  # the thread commits it while the loop is between its look and the lock
    behind = writer.submit(lambda conn: "behind", small=True)
    assert not (behind.done() and not ahead.done())
    assert await asyncio.gather(ahead, behind) == ["ahead", "behind"]


async def test_a_sqlite_write_behind_a_lock_waits_for_it_on_the_writer_thread(
    sqlite_store: SQLiteStore,
) -> None:
    """Another connection holds the write lock (as a checkpoint can): a small write does
    not wait on the event loop (it goes to the writer thread), and it is not failed by
    SQLite's busy timeout but retried until the lock is let go (writer.py `_begin`)."""
    tenant = (await sqlite_store.create_tenant("acme", NOW)).id
    other = sqlite3.connect(sqlite_store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        began = time.monotonic()
        pending = asyncio.ensure_future(sqlite_store.submit_tasks(tenant, [new_task()], NOW))
        # The loop keeps turning (this loop is on it) while the writer thread holds the
        # write and waits for the lock.
        writer = sqlite_store._writer
        while not writer._busy.locked() and time.monotonic() - began < 10:
            await asyncio.sleep(0.001)
        assert writer._busy.locked() and time.monotonic() - began < 1.0
        assert not pending.done()
    finally:
        other.execute("COMMIT")
        other.close()
    (result,) = await pending
    assert result.created


def wal_bytes(store: SQLiteStore) -> int:
    return os.path.getsize(f"{store.path}-wal")


async def test_after_a_checkpoint_the_sqlite_writer_catches_up_so_the_wal_starts_over(
    sqlite_store: SQLiteStore,
) -> None:
    """Under a steady load the checkpoint thread never finds the WAL without new frames,
    so the WAL never started over and grew to its TRUNCATE limit. After each checkpoint
    the writer checkpoints what is left between two batches (writer.py `catch_up`), and
    the next commit writes the WAL from its beginning: the file stops growing."""
    sqlite_store._stopping.set()  # no background checkpoint: this test runs them
    sqlite_store._checkpointer.join()
    tenant = (await sqlite_store.create_tenant("acme", NOW)).id
    other = sqlite3.connect(sqlite_store.path, isolation_level=None)
    reader = sqlite3.connect(sqlite_store.path, isolation_level=None)
    try:
        await sqlite_store.submit_tasks(tenant, [new_task() for _ in range(300)], NOW)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM tasks").fetchone()  # a snapshot here
        await sqlite_store.submit_tasks(tenant, [new_task()], NOW)  # written meanwhile
        other.execute("PRAGMA wal_checkpoint(PASSIVE)")  # copies up to the snapshot only
        reader.execute("COMMIT")

        sqlite_store._writer.catch_up()
        await sqlite_store._writer.submit(lambda conn: None)  # a batch after the catch-up
        size = wal_bytes(sqlite_store)
        await sqlite_store.submit_tasks(tenant, [new_task() for _ in range(30)], NOW)
        assert wal_bytes(sqlite_store) == size  # written from the beginning, not appended
    finally:
        other.close()
        reader.close()


# Leases run on the database's clock, which no fake clock reaches (store/base.py): these
# tests expire a lease by renewing it into the past (a negative ttl), or wait for a short one.


async def test_a_kept_secret_is_the_first_askers_for_good(store: Store) -> None:
    first = await store.keep_secret("console", b"a" * 32, NOW)
    assert first == b"a" * 32
    assert await store.keep_secret("console", b"b" * 32, NOW + 1) == first  # another node
    assert await store.keep_secret("other", b"c" * 32, NOW) == b"c" * 32  # by name


async def test_a_lease_is_held_by_one_holder_until_it_expires(store: Store) -> None:
    assert await store.acquire_lease("timers", "node-a", 60.0)
    assert not await store.acquire_lease("timers", "node-b", 60.0)
    assert await store.acquire_lease("timers", "node-a", 60.0)  # renewed
    assert await store.acquire_lease("timers", "node-a", -1.0)  # renewed into the past
    assert await store.acquire_lease("timers", "node-b", 60.0)  # expired: taken over
    assert not await store.acquire_lease("timers", "node-a", 60.0)
    assert await store.acquire_lease("other", "node-a", 60.0)  # leases are by name


async def test_a_lease_runs_out_by_itself_on_the_databases_clock(store: Store) -> None:
    ttl_s = 0.3
    start = time.time()
    assert await store.acquire_lease("timers", "node-a", ttl_s)
    ((_name, holder, until),) = await store.list_leases("timers")
    assert holder == "node-a"
    # The database's clock is this machine's: the end is ttl_s from now (give or take).
    assert start + ttl_s - 1 <= until <= time.time() + ttl_s + 1

    while not await store.acquire_lease("timers", "node-b", 60.0):
        assert time.time() < start + 10, "the lease never ran out"
        await asyncio.sleep(0.05)

    assert time.time() >= until - 1  # not before its end
    assert [h for _n, h, _u in await store.list_leases("timers")] == ["node-b"]


async def test_a_holder_hands_its_lease_back_by_renewing_it_into_the_past(store: Store) -> None:
    assert await store.acquire_lease("timers", "node-a", 10.0)
    assert await store.acquire_lease("timers", "node-a", -1.0)  # run out

    assert await store.list_leases("timers") == []
    assert await store.acquire_lease("timers", "node-b", 10.0)


async def test_a_level_claim_takes_only_that_priority_in_start_tag_order(
    store: Store, tenant: str
) -> None:
    high = [new_task(priority=9, stag=NOW + i) for i in range(3)]
    low = [new_task(priority=2, stag=NOW + 10 - i) for i in range(3)]
    await store.submit_tasks(tenant, high + low, NOW)
    request = ClaimRequest(tenant_id=tenant, worker="w", functions=(FN,), limit=2, priority=2)

    (claimed,) = await store.claim_tasks([request], NOW, LEASE_S)

    assert [t.id for t in claimed] == [low[2].id, low[1].id]
    empty = ClaimRequest(tenant_id=tenant, worker="w", functions=(FN,), limit=5, priority=7)
    assert await store.claim_tasks([empty], NOW, LEASE_S) == [[]]


async def test_submit_leased_commits_tasks_with_the_named_ones_leased_as_a_claim_leases_them(
    store: Store, tenant: str, other: str
) -> None:
    """Direct dispatch (engine/direct.py): one commit inserts and leases."""
    twin, leased, waiting = new_task(priority=3), new_task(priority=3), new_task(priority=1)
    later = scheduled_task(NOW + 60)
    await submit(store, tenant, twin)
    (claimed,) = await claim(store, tenant)  # the same task, leased by a claim

    (direct,) = await store.submit_leased(
        tenant, [leased, waiting, later], NOW, "w1", [leased.id, later.id], LEASE_S
    )

    assert direct.id == leased.id  # a scheduled task is never leased
    same = ("function", "payload", "attempt", "max_attempts", "priority", "dispatched_at",
            "lease_until", "created_at", "ready_at", "stag")  # fmt: skip
    assert {f: getattr(direct, f) for f in same} == {f: getattr(claimed, f) for f in same}
    assert await state_of(store, tenant, leased.id) == RUNNING
    assert await state_of(store, tenant, waiting.id) == READY
    assert await state_of(store, tenant, later.id) == SCHEDULED
    assert [c.id for c in await claim(store, tenant)] == [waiting.id]
    assert await store.finish_attempts([finish(direct)], NOW) == [ACCEPTED]
    assert await state_of(store, tenant, leased.id) == SUCCEEDED
    # Another tenant's ids lease nothing: the lease is the submitting tenant's own.
    theirs = new_task()
    assert await store.submit_leased(other, [theirs], NOW, "w2", [leased.id], LEASE_S) == []


async def test_promote_leased_makes_due_tasks_ready_and_leased_in_claim_order(
    store: Store, tenant: str, other: str
) -> None:
    """Direct dispatch of delayed tasks the timer heap fires (engine/delays.py)."""
    low = scheduled_task(NOW - 1, priority=1)
    high = scheduled_task(NOW - 1, priority=8)
    mid = scheduled_task(NOW - 1, priority=5)
    elsewhere = scheduled_task(NOW - 1, function="other")  # not a function it may take
    later = scheduled_task(NOW + 60)  # not due
    ids = await submit(store, tenant, low, high, mid, elsewhere, later)

    claimed = await store.promote_leased(tenant, ids, NOW, "w1", (FN,), 2, LEASE_S)

    assert [c.id for c in claimed] == [high.id, mid.id]
    assert all((c.attempt, c.ready_at, c.dispatched_at) == (1, NOW, NOW) for c in claimed)
    assert claimed[0].lease_until == NOW + LEASE_S
    assert [await state_of(store, tenant, t.id) for t in (low, elsewhere, later)] == [
        SCHEDULED, SCHEDULED, SCHEDULED,
    ]  # fmt: skip
    assert await store.promote_leased(other, ids, NOW, "w2", (FN,), 5, LEASE_S) == []
    assert await store.finish_attempts([finish(claimed[0])], NOW) == [ACCEPTED]


async def test_promote_leased_ahead_leases_tasks_due_by_then_each_with_its_start_time(
    store: Store, tenant: str
) -> None:
    """A delayed task leased just before it is due (engine/delays.py's lead) carries its
    run_at as `start_at`; a due one carries none; one due after `due_by` stays."""
    due = scheduled_task(NOW - 1, priority=5)
    soon = scheduled_task(NOW + 0.03, priority=5)
    later = scheduled_task(NOW + 0.2, priority=5)
    ids = await submit(store, tenant, due, soon, later)
    assert [c.id for c in await store.promote_leased(tenant, [soon.id], NOW, "w1", (FN,), 5,
                                                     LEASE_S)] == []  # fmt: skip

    claimed = await store.promote_leased(tenant, ids, NOW, "w1", (FN,), 5, LEASE_S,
                                         due_by=NOW + 0.05)  # fmt: skip

    by_id = {c.id: c for c in claimed}
    assert set(by_id) == {due.id, soon.id}
    assert by_id[due.id].start_at is None
    assert by_id[soon.id].start_at == pytest.approx(NOW + 0.03)
    assert by_id[soon.id].dispatched_at == NOW  # leased now; the worker starts it later
    assert await state_of(store, tenant, later.id) == SCHEDULED
