"""Prefetch end to end, on each backend: a real worker running short tasks holds some
ahead of its slots (its credit says how many, and the server sends that many more), and
every task still runs once; a task that turns out long closes the window, so what comes
next goes to another worker instead of waiting behind it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import sluice
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("prefetch")
started = threading.Event()
gate = threading.Event()


@app.task
def noop(i: int = 0) -> int:
    return i


@app.task
def long() -> None:
    started.set()
    assert gate.wait(30)


def conn_of(server, worker):  # type: ignore[no-untyped-def]
    return next(c for c in server.node.registry if c.worker_id == worker.worker_id)


async def test_short_tasks_are_held_ahead_and_each_runs_once(tmp_path: Path, backend: str) -> None:
    async with (
        running_server(tmp_path, app, backend) as server,
        running_worker(server, app, concurrency=2) as worker,
        sluice.AsyncClient(server.url, server.api_key) as client,
    ):
        outcomes = await client.submit_many([{"function": "noop", "args": [i]} for i in range(600)])
        await wait_for(lambda: worker.completed == 600, timeout=60)
        # While its two slots were full of no-op tasks the worker asked for tasks ahead,
        # and the server sent them: some waited here for a slot.
        assert worker.held_ahead > 0
        await wait_for(lambda: server.count("state = 'succeeded'") == 600, timeout=30)
        # Idle again, it holds nothing ahead (the next look closes the window).
        await wait_for(lambda: conn_of(server, worker).ahead == 0, timeout=5)
        await wait_for(lambda: conn_of(server, worker).free == 2)  # every result in
        assert server.count("attempt != 1") == 0  # nothing ran twice or was lost
        assert {(await client.get(o.id)).state for o in outcomes[:5]} == {"succeeded"}


async def test_a_long_task_closes_the_window_and_the_next_go_elsewhere(
    tmp_path: Path, backend: str
) -> None:
    started.clear()
    gate.clear()
    async with (
        running_server(tmp_path, app, backend) as server,
        running_worker(server, app, concurrency=1) as first,
        sluice.AsyncClient(server.url, server.api_key) as client,
    ):
        try:
            # Short tasks filling its slot open a window. The worker sizes it at most every
            # RETUNE_S from the pace it measured, and a cold first attempt (a thread
            # started) can read slow on a loaded machine; 50 no-ops may all end before the
            # next look, so it gets batches until one is held ahead.
            submitted = 0
            deadline = time.monotonic() + 20
            while first.held_ahead == 0:
                assert time.monotonic() < deadline, "no task was ever held ahead"
                await client.submit_many([{"function": "noop", "args": [i]} for i in range(50)])
                submitted += 50
                await wait_for(lambda n=submitted: first.completed == n, timeout=30)

            await client.submit({"function": "long"})
            await wait_for(started.is_set)
            # Its one slot is busy past the round trip: nothing more is held for it.
            await wait_for(lambda: conn_of(server, first).ahead == 0, timeout=5)
            assert conn_of(server, first).free == 0

            after = await client.submit_many([{"function": "noop", "args": [i]} for i in range(3)])
            async with running_worker(server, app, concurrency=1) as second:
                for outcome in after:
                    assert (await client.wait(outcome.id, 20)).state == "succeeded"
                assert second.completed == 3  # not behind the long task
                assert first.completed == submitted and not gate.is_set()
        finally:
            gate.set()
        assert server.count("attempt > 1") == 0
