"""Delayed tasks leased ahead (engine/delays.py, issue 20 point 4), on each backend, with
a real server and worker: a task an idle worker may take is leased to it `delay_lead_s`
before it is due and started at its time, never before; one cancelled while the worker
waits for its time never runs and is answered `cancelled`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sluice
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("lead")
ran: dict[int, float] = {}  # each call's start, on the worker's clock
lock = threading.Lock()
LEAD_S = 0.5  # long enough that a loaded machine still leases every task ahead


@app.task
def stamp(i: int) -> None:
    with lock:
        ran[i] = time.time()


async def test_a_delayed_task_is_leased_ahead_and_starts_at_its_time(
    tmp_path: Path, backend: str
) -> None:
    ran.clear()
    async with (
        running_server(tmp_path, app, backend, delay_lead_s=LEAD_S) as server,
        running_worker(server, app, concurrency=8),  # a free slot for each, ahead
        sluice.AsyncClient(server.url, server.api_key) as client,
    ):
        # A task run first: the worker is known idle from then on (a round found its
        # queue empty). On a loaded machine, without it, the first delayed task could
        # fire before the node's first round for the worker, and wait for its time.
        await client.submit({"function": "stamp", "args": [-1]})
        await wait_for(lambda: server.count("state = 'succeeded'") == 1, timeout=30)
        sent = [await client.submit({"function": "stamp", "args": [i], "delay": 1.0 + i / 10})
                for i in range(5)]  # fmt: skip
        # Their attempts are written when their results come back, after they ran.
        await wait_for(lambda: server.count("state = 'succeeded'") == 6, timeout=30)
        store = server.node.store
        for i, outcome in enumerate(sent):
            task = await store.get_task(server.tenant_id, outcome.id)
            (attempt,) = await store.list_attempts(server.tenant_id, outcome.id)
            assert task is not None and attempt.dispatched_at is not None
            assert ran[i] >= task.run_at  # never before its time
            assert attempt.dispatched_at < task.run_at  # leased ahead: written and pushed
            assert attempt.started_at is not None and attempt.started_at >= task.run_at


async def test_a_task_cancelled_while_its_worker_waits_for_its_time_never_runs(
    tmp_path: Path, backend: str
) -> None:
    ran.clear()
    async with (
        running_server(tmp_path, app, backend, delay_lead_s=5.0) as server,
        running_worker(server, app, concurrency=2) as worker,
        sluice.AsyncClient(server.url, server.api_key) as client,
    ):
        outcome = await client.submit({"function": "stamp", "args": [7], "delay": 6.0})
        # Leased ahead (state running) about a second after the submit: the worker holds it.
        await wait_for(lambda: server.count("state = 'running'") == 1, timeout=10)
        await wait_for(lambda: outcome.id in worker._running, timeout=10)
        await client.cancel(outcome.id)
        await wait_for(lambda: server.count("state = 'cancelled'") == 1, timeout=10)
        (attempt,) = await server.node.store.list_attempts(server.tenant_id, outcome.id)
        await wait_for(lambda: worker.completed == 1, timeout=10)
        assert 7 not in ran
        assert outcome.id not in worker._running
        assert attempt.dispatched_at is not None
