"""Reliability semantics (DESIGN §4) end to end: classified retries, cancel, dedup,
expiry, timeouts and hand-back on drain."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

import sluice
from sluice.worker.context import TaskContext
from sluice.worker.runtime import Worker
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("reliable")
FAST_RETRY = sluice.RetryPolicy(max_attempts=2, base_s=0.01, min_backoff_s=0.0, cap_s=0.02)
calls: dict[str, int] = {}
started = asyncio.Event()
sync_saw_cancel = threading.Event()


def count(name: str) -> int:
    calls[name] = calls.get(name, 0) + 1
    return calls[name]


@app.task(retry=FAST_RETRY, non_retryable=(KeyError,))
async def missing(name: str) -> None:
    count(name)
    raise KeyError("no such customer")


@app.task(retry=FAST_RETRY)
async def refuses(name: str) -> None:
    count(name)
    raise sluice.Reject("invalid address")


@app.task(retry=FAST_RETRY)
async def busy_downstream(name: str, throttles: int) -> int:
    n = count(name)
    if n <= throttles:
        raise sluice.Throttled(retry_after=0.01)
    return n


@app.task(retry=FAST_RETRY)
async def fails_thrice(name: str) -> int:
    n = count(name)
    if n <= 3:
        raise RuntimeError(f"failure {n}")
    return n


@app.task(retry=FAST_RETRY)
async def later(name: str) -> float:
    if count(name) == 1:
        raise sluice.Retry(delay=0.3)
    return time.time()


@app.task(retry=FAST_RETRY, timeout=0.2)
async def slow(name: str) -> str:
    if count(name) == 1:
        await asyncio.Event().wait()  # never finishes: only the timeout ends it
    return "fast the second time"


@app.task
async def forever(name: str) -> None:
    count(name)
    started.set()
    await asyncio.Event().wait()  # runs until cancelled


@app.task
def forever_sync(ctx: TaskContext, name: str) -> None:
    count(name)
    if ctx.wait(3600):  # returns as soon as the task is cancelled
        sync_saw_cancel.set()


release_hung = threading.Event()


@app.task(retry=FAST_RETRY, timeout=0.2)
def hang(name: str) -> None:
    count(name)
    release_hung.wait(30)


@app.task(timeout=2)
def quick(name: str) -> int:
    return count(name)


@app.task
async def once(name: str) -> int:
    return count(name)


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    calls.clear()
    async with running_server(tmp_path, app, backend) as running:
        app.configure(url=running.url, api_key=running.api_key)
        yield running
        if app._aclient is not None:
            await app._aclient.aclose()
        app.configure()


async def test_configured_exception_types_are_not_retried(server) -> None:
    async with running_worker(server, app):
        handle = await missing.asubmit("a")
        with pytest.raises(sluice.TaskFailed) as failed:
            await handle.aresult(timeout=10)
    assert failed.value.state == "dead"
    task = await app.aclient.get(handle.id)
    assert task.attempt == 1
    assert task.attempts[0].outcome == "rejected"
    assert task.attempts[0].error_type == "KeyError"
    assert calls["a"] == 1


async def test_reject_sends_a_task_straight_to_dead(server) -> None:
    async with running_worker(server, app):
        handle = await refuses.asubmit("b")
        with pytest.raises(sluice.TaskFailed):
            await handle.aresult(timeout=10)
    task = await app.aclient.get(handle.id)
    assert (task.state, task.attempt, task.error) == ("dead", 1, "invalid address")


async def test_throttles_do_not_use_up_attempts(server) -> None:
    async with running_worker(server, app):
        # max_attempts is 2, yet five throttled answers are retried, then it succeeds.
        handle = await busy_downstream.asubmit("c", 5)
        assert await handle.aresult(timeout=10) == 6
    task = await app.aclient.get(handle.id)
    assert [a.outcome for a in task.attempts] == ["throttled"] * 5 + ["succeeded"]


async def test_retry_runs_again_at_the_time_the_handler_asked_for(server) -> None:
    async with running_worker(server, app):
        handle = await later.asubmit("d")
        ran_at = await handle.aresult(timeout=10)
    task = await app.aclient.get(handle.id)
    assert [a.outcome for a in task.attempts] == ["retry", "succeeded"]
    first_finished = task.attempts[0].finished_at
    assert first_finished is not None
    assert ran_at >= first_finished + 0.3


async def test_an_attempt_past_its_timeout_is_cancelled_and_retried(server) -> None:
    async with running_worker(server, app, concurrency=1) as worker:
        handle = await slow.asubmit("e")
        assert await handle.aresult(timeout=10) == "fast the second time"
        assert worker._running == {}
    task = await app.aclient.get(handle.id)
    assert [a.outcome for a in task.attempts] == ["timed_out", "succeeded"]
    conn_inflight = [len(c.inflight) for c in server.node.registry]
    assert conn_inflight in ([], [0])


async def test_cancelling_a_queued_task_means_it_never_runs(server) -> None:
    handle = await once.asubmit("f", delay=0.2)
    assert await handle.acancel() == "cancelled"
    async with running_worker(server, app):
        # a task submitted after it runs, so the worker had every chance to run the first
        assert await (await once.asubmit("g")).aresult(timeout=10) == 1
    assert "f" not in calls
    task = await app.aclient.get(handle.id)
    assert task.state == "cancelled"
    assert "cancelled" in [e.stage for e in task.timeline]


async def test_cancelling_a_running_async_task_stops_its_handler(server) -> None:
    started.clear()
    async with running_worker(server, app) as worker:
        handle = await forever.asubmit("h")
        await wait_for(started.is_set)
        assert await handle.acancel() == "cancelled"
        await wait_for(lambda: worker._running == {})
        await wait_for(lambda: all(not c.inflight for c in server.node.registry))
    task = await app.aclient.get(handle.id)
    assert task.state == "cancelled"
    assert [a.outcome for a in task.attempts] == ["cancelled"]


async def test_a_running_sync_task_sees_ctx_cancelled(server) -> None:
    sync_saw_cancel.clear()
    async with running_worker(server, app):
        handle = await forever_sync.asubmit("i")
        await wait_for(lambda: calls.get("i") == 1)
        await handle.acancel()
        await wait_for(sync_saw_cancel.is_set)
    assert (await app.aclient.get(handle.id)).state == "cancelled"


async def test_cancelling_a_finished_task_is_a_conflict(server) -> None:
    async with running_worker(server, app):
        handle = await once.asubmit("j")
        await handle.aresult(timeout=10)
    with pytest.raises(sluice.RemoteError) as refused:
        await handle.acancel()
    assert (refused.value.status, refused.value.code) == (409, "task_ended")


async def test_twenty_concurrent_submits_of_one_key_make_one_task(server) -> None:
    clients = [sluice.AsyncClient(server.url, server.api_key) for _ in range(20)]
    try:
        spec = {"function": "once", "args": ["k"], "key": "order-42"}
        outcomes = await asyncio.gather(*(c.submit(spec) for c in clients))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert len({o.id for o in outcomes}) == 1
    assert sum(o.created for o in outcomes) == 1
    async with running_worker(server, app):
        assert await app.aclient.wait(outcomes[0].id, 10)
        again = await once.asubmit("k", key="order-42")
        assert (again.created, again.id) == (False, outcomes[0].id)
        await wait_for(lambda: calls.get("k") == 1)
    assert server.count("key = 'order-42'") == 1
    assert calls["k"] == 1


async def test_a_task_not_started_before_its_ttl_expires_and_never_runs(server) -> None:
    handle = await once.asubmit("l", ttl=0.3)
    task = await app.aclient.wait(handle.id, 5)  # the expiry wakes the waiter
    assert task.state == "expired"
    async with running_worker(server, app):
        assert await (await once.asubmit("m")).aresult(timeout=10) == 1
    assert "l" not in calls


async def test_a_draining_worker_hands_back_what_it_cannot_finish(server) -> None:
    started.clear()
    async with running_worker(server, app, grace_s=0.1) as first:
        handle = await forever.asubmit("n")
        await wait_for(started.is_set)
        await first.drain()
        await wait_for(lambda: server.count("state = 'ready'") == 1)
    task = await app.aclient.get(handle.id)
    assert (task.state, task.attempt) == ("ready", 0)
    assert "handed_back" in [e.stage for e in task.timeline]
    started.clear()
    async with running_worker(server, app):
        await wait_for(started.is_set)
        running = await app.aclient.get(handle.id)
        assert (running.state, running.attempt) == ("running", 1)
        await running_handle_cancel(handle)


async def test_a_worker_drained_while_it_connects_stops(server) -> None:
    # SIGTERM during start-up (`sluice worker --processes N` forwards it to children that
    # may not be connected yet): the drain finds no connection, and the worker must not
    # then begin a session that nothing would ever end.
    worker = Worker(app, url=server.url, api_key=server.api_key, concurrency=2)
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0)  # one turn of the loop: run() is now opening its connection
    assert not worker.connected.is_set()
    await worker.drain()
    await asyncio.wait_for(running, timeout=10)
    assert not worker.connected.is_set()


async def running_handle_cancel(handle: sluice.TaskHandle) -> None:
    assert await handle.acancel() == "cancelled"


async def test_hung_sync_handlers_do_not_starve_the_tasks_after_them(server) -> None:
    release_hung.clear()
    try:
        async with running_worker(server, app, concurrency=2) as worker:
            hung = [await hang.asubmit(f"hang{i}") for i in range(2)]
            await wait_for(lambda: worker._abandoned == 2, timeout=10)
            # Both threads are stuck: the server must not be offered their slots.
            await wait_for(lambda: all(c.slots == 0 for c in server.node.registry))
            handle = await quick.asubmit("q")
            task = await app.aclient.wait(handle.id, 0.5)
            assert task.state == "ready"  # held back, not started and timed out in a queue
            release_hung.set()
            assert await handle.aresult(timeout=10) == 1
            assert (await app.aclient.get(handle.id)).attempt == 1
            for h in hung:
                await h.aresult(timeout=10)  # the retries run once the threads are back
    finally:
        release_hung.set()


async def test_dead_tasks_are_listed_and_retried_one_by_one_or_by_selector(server) -> None:
    async with running_worker(server, app):
        handles = [await refuses.asubmit(f"dead{i}") for i in range(5)]
        for h in handles:
            with pytest.raises(sluice.TaskFailed):
                await h.aresult(timeout=10)
        client = sluice.Client(server.url, server.api_key)
        try:
            dead = await asyncio.to_thread(lambda: list(client.dead(function="refuses", limit=2)))
            assert [d.id for d in dead] == [h.id for h in handles]
            assert {d.error for d in dead} == {"invalid address"}

            one = await asyncio.to_thread(client.retry, handles[0].id)
            assert "retried" in [e.stage for e in one.timeline]
            await wait_for(lambda: calls.get("dead0") == 2)
            await wait_for(lambda: server.count("state = 'dead'") == 5)
            retried = await asyncio.to_thread(lambda: client.retry_dead(function="refuses"))
            assert retried == 5
            await wait_for(lambda: all(calls.get(f"dead{i}", 0) >= 2 for i in range(5)))
            with pytest.raises(sluice.RemoteError) as refused:
                await asyncio.to_thread(client.retry, (await once.asubmit("alive")).id)
            assert refused.value.code == "task_not_dead"
        finally:
            client.close()
    await wait_for(lambda: server.count("state = 'dead'") == 5)
    task = await app.aclient.get(handles[1].id)
    # A new attempt series: the history of the first one is kept.
    assert [a.outcome for a in task.attempts] == ["rejected", "rejected"]
    assert len((await app.aclient.get(handles[0].id)).attempts) == 3
    assert "retried" in [e.stage for e in task.timeline]


async def test_a_task_may_carry_its_own_retry_policy(server) -> None:
    generous = sluice.RetryPolicy(max_attempts=4, base_s=0.01, min_backoff_s=0.0, cap_s=0.02)
    async with running_worker(server, app):
        # The function allows 2 attempts; this task allows 4.
        assert await (await fails_thrice.asubmit("o", retry=generous)).aresult(timeout=10) == 4
        stingy = await fails_thrice.asubmit("p")
        with pytest.raises(sluice.TaskFailed):
            await stingy.aresult(timeout=10)
    assert (await app.aclient.get(stingy.id)).attempt == 2
