"""API, dispatcher, timers and real workers in one process, over real HTTP and websockets."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

import sluice
from sluice.worker.context import TaskContext
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("e2e")
started: list[tuple[str, int]] = []
gate = asyncio.Event()
concurrent = {"now": 0, "max": 0}
flaky_calls: dict[str, int] = {}


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task
async def shout(ctx: TaskContext, word: str) -> dict[str, object]:
    return {"word": word.upper(), "task_id": ctx.task_id, "attempt": ctx.attempt}


@app.task
async def record(label: str, priority_seen: int) -> None:
    started.append((label, priority_seen))


@app.task
async def hold() -> None:
    concurrent["now"] += 1
    concurrent["max"] = max(concurrent["max"], concurrent["now"])
    try:
        await gate.wait()
    finally:
        concurrent["now"] -= 1


@app.task(retry=sluice.RetryPolicy(max_attempts=3, base_s=0.01, min_backoff_s=0.0, cap_s=0.05))
async def flaky(name: str) -> str:
    flaky_calls[name] = flaky_calls.get(name, 0) + 1
    if flaky_calls[name] == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


@app.task
async def outlive_the_lease(seconds: float) -> str:
    await asyncio.sleep(seconds)  # the handler's own work, longer than one lease
    return "done"


@app.task
async def stamp() -> float:
    return time.time()


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    # Module state is shared by the SQLite and PostgreSQL runs of each test.
    started.clear()
    flaky_calls.clear()
    async with running_server(tmp_path, app, backend) as running:
        app.configure(url=running.url, api_key=running.api_key)
        yield running
        if app._aclient is not None:
            await app._aclient.aclose()
        app.configure()


async def test_submitted_task_runs_and_its_result_comes_back(server) -> None:
    async with running_worker(server, app):
        handle = await add.asubmit(2, 3)
        assert await handle.aresult(timeout=10) == 5
        task = await app.aclient.get(handle.id)
    assert task.state == "succeeded"
    assert task.attempt == 1
    stages = [entry.stage for entry in task.timeline]
    assert stages == ["submitted", "ready", "dispatched", "started", "finished", "succeeded"]
    times = [entry.at for entry in task.timeline]
    assert times == sorted(times)
    assert task.attempts[0].outcome == "succeeded"
    assert task.attempts[0].worker is not None


async def test_async_handler_sees_its_task_id_and_attempt(server) -> None:
    async with running_worker(server, app):
        handle = await shout.asubmit("hi")
        result = await handle.aresult(timeout=10)
    assert result == {"word": "HI", "task_id": handle.id, "attempt": 1}


async def test_a_batch_of_a_thousand_is_submitted_in_one_request_and_all_run(server) -> None:
    handles = await add.asubmit_many([(i, i) for i in range(1000)])
    assert len({h.id for h in handles}) == 1000
    assert server.count("state = 'ready'") == 1000
    async with running_worker(server, app, concurrency=50):
        await wait_for(lambda: server.count("state = 'succeeded'") == 1000, timeout=30)
    assert await handles[7].aresult(timeout=1) == 14


async def test_higher_priority_tasks_start_first(server) -> None:
    started.clear()
    for priority in [0, 3, 9, 5, 9, 1]:
        await record.asubmit(f"p{priority}", priority, priority=priority)
    async with running_worker(server, app, concurrency=1):
        await wait_for(lambda: len(started) == 6)
    assert [p for _, p in started] == [9, 9, 5, 3, 1, 0]


async def test_a_worker_never_holds_more_tasks_than_its_slots(server) -> None:
    global gate
    gate = asyncio.Event()  # an Event binds to the loop that first waits on it: one per test
    concurrent.update(now=0, max=0)
    await hold.asubmit_many([() for _ in range(10)])
    async with running_worker(server, app, concurrency=2) as worker:
        await wait_for(lambda: concurrent["now"] == 2)
        conn = next(iter(server.node.registry))
        assert len(conn.inflight) == 2
        assert server.count("state = 'ready'") == 8
        gate.set()
        await wait_for(lambda: server.count("state = 'succeeded'") == 10, timeout=20)
        assert worker.completed == 10
    assert concurrent["max"] == 2


async def test_a_failed_attempt_is_retried_and_its_history_kept(server) -> None:
    async with running_worker(server, app):
        handle = await flaky.asubmit("once")
        assert await handle.aresult(timeout=10) == "ok"
        task = await app.aclient.get(handle.id)
    assert task.attempt == 2
    assert [a.outcome for a in task.attempts] == ["failed", "succeeded"]
    assert task.attempts[0].error_type == "RuntimeError"
    assert "first attempt fails" in (task.attempts[0].traceback or "")


async def test_a_sub_second_delay_runs_on_time_without_waiting_for_the_interval(
    tmp_path: Path,
) -> None:
    # The promotion interval is 30 s here: only the in-memory timer can start it on time.
    async with running_server(tmp_path, app, promote_interval_s=30.0) as slow_timers:
        app.configure(url=slow_timers.url, api_key=slow_timers.api_key)
        try:
            async with running_worker(slow_timers, app):
                submitted = time.time()
                handle = await stamp.asubmit(delay=0.3)
                assert (await app.aclient.get(handle.id)).state == "scheduled"
                ran_at = await handle.aresult(timeout=20)
                task = await app.aclient.get(handle.id)
        finally:
            await app.aclient.aclose()
            app.configure()
    assert submitted + 0.3 <= ran_at < submitted + 10
    assert "scheduled" in [e.stage for e in task.timeline]


async def test_a_delayed_task_is_not_started_before_its_time(server) -> None:
    async with running_worker(server, app):
        # 3 s ahead: a wait of 0.5 s, and room for a stalled machine, before its time.
        handle = await stamp.asubmit(run_at=time.time() + 3)
        task = await app.aclient.wait(handle.id, 0.5)
        assert task.state == "scheduled"
        ran_at = await handle.aresult(timeout=10)
    assert ran_at >= task.run_at


async def test_result_wait_returns_the_unfinished_task_after_its_timeout(server) -> None:
    handle = await add.asubmit(1, 1)  # no worker is connected
    begun = time.monotonic()
    task = await app.aclient.wait(handle.id, 0.3)
    assert task.state == "ready"
    assert time.monotonic() - begun >= 0.3
    with pytest.raises(sluice.ResultTimeout):
        await handle.aresult(timeout=0.2)


async def test_sync_client_and_sync_handler_work_together(server) -> None:
    def produce() -> int:  # the sync SDK blocks, so it runs off the server's event loop
        handle = add.submit(20, 22)
        assert handle.created and handle.status() != "dead"
        return int(handle.result(timeout=10))

    async with running_worker(server, app):
        assert await asyncio.to_thread(produce) == 42


async def test_openapi_document_lists_every_route(server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) >= {
        "/v1/tasks",
        "/v1/tasks/batch",
        "/v1/tasks/{task_id}",
        "/v1/tasks/{task_id}/result",
        "/v1/tenants",
        "/v1/health",
    }
    body = doc["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/TaskSpec")


async def test_heartbeats_keep_a_task_longer_than_its_lease_from_being_reaped(server) -> None:
    lease = server.node.settings.lease_s
    async with running_worker(server, app):
        handle = await outlive_the_lease.asubmit(lease * 1.5)
        assert await handle.aresult(timeout=lease * 5) == "done"
        task = await app.aclient.get(handle.id)
    assert task.attempt == 1
    assert [a.outcome for a in task.attempts] == ["succeeded"]
    assert "lease_lost" not in [e.stage for e in task.timeline]


async def test_a_worker_with_a_wrong_key_stops_instead_of_retrying(server) -> None:
    from sluice.worker.runtime import FatalWorkerError, Worker

    worker = Worker(app, url=server.url, api_key="sk_wrong", concurrency=1)
    with pytest.raises(FatalWorkerError):
        await asyncio.wait_for(worker.run(), timeout=10)
    assert len(server.node.registry) == 0


async def test_a_bad_hello_is_refused_with_an_error_frame_and_close_code_4400(server) -> None:
    import websockets

    headers = {"Authorization": f"Bearer {server.api_key}"}
    url = server.url.replace("http://", "ws://") + "/v1/workers/connect"
    async with websockets.connect(url, additional_headers=headers) as ws:
        await ws.send('{"t": "hello", "worker_id": "w", "slots": 1, "functions": []}')
        frame = await ws.recv()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert '"t":"error"' in str(frame)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_a_task_s_state_changes_stream_as_server_sent_events(server) -> None:
    handle = await stamp.asubmit(delay=1.0)
    headers = {"authorization": f"Bearer {server.api_key}"}
    events = []
    url = f"/v1/tasks/{handle.id}/events"
    # The stream opens before the worker starts, so it sees the task still scheduled: a
    # worker started first could take longer than the delay on a loaded machine (CI saw
    # the first event say 'succeeded' with a 0.3 s delay).
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("GET", url, headers=headers) as sse,
        running_worker(server, app),
    ):
        assert sse.headers["content-type"].startswith("text/event-stream")
        async for line in sse.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:")))
    states = [e["state"] for e in events]
    assert states[0] == "scheduled"
    assert states[-1] == "succeeded"
    assert isinstance(events[-1]["result"], float)
    assert len(states) == len(set(states))  # each change once


async def test_the_client_waits_out_a_503_with_retry_after_and_then_succeeds(server) -> None:
    server.node.accepting = False  # what a stopping node does
    asyncio.get_running_loop().call_later(0.5, setattr, server.node, "accepting", True)
    began = time.monotonic()
    handle = await add.asubmit(1, 2)
    waited = time.monotonic() - began
    assert handle.created
    assert waited >= 1.0  # Retry-After: 1, plus jitter
