"""Rate and concurrency limits end to end, on SQLite and PostgreSQL: a burst of work is
released at the configured rate (no one-second window sees more than rate + burst
starts), and no more than max_concurrency tasks of a function run at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import sluice
from tests.harness import running_server, running_worker, wait_for

RATE, BURST, TOTAL = 200.0, 20, 600
app = sluice.App("limits")
running = {"now": 0, "max": 0}
release = asyncio.Event()


@app.task(rate=RATE, burst=BURST)
async def shaved(n: int) -> int:
    return n


@app.task(max_concurrency=3)
async def capped(n: int) -> int:
    running["now"] += 1
    running["max"] = max(running["max"], running["now"])
    try:
        await release.wait()
    finally:
        running["now"] -= 1
    return n


@app.task
async def free(n: int) -> int:
    return n


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend) as server:
        app.configure(url=server.url, api_key=server.api_key)
        yield server
        if app._aclient is not None:
            await app._aclient.aclose()
        app.configure()


async def test_a_flood_is_released_at_the_configured_rate(server) -> None:
    handles = await shaved.asubmit_many([(i,) for i in range(TOTAL)])
    async with running_worker(server, app, concurrency=64):
        await wait_for(lambda: server.count("state = 'succeeded'") == TOTAL, timeout=30)

    starts = []
    for handle in handles:
        (attempt,) = await server.node.store.list_attempts(server.tenant_id, handle.id)
        assert attempt.dispatched_at is not None
        starts.append(attempt.dispatched_at)
    starts.sort()
    busiest = max(sum(1 for s in starts[i:] if s < begin + 1.0) for i, begin in enumerate(starts))
    assert busiest <= RATE + BURST
    released = (TOTAL - BURST) / (starts[-1] - starts[0])
    assert released == pytest.approx(RATE, rel=0.10)


async def test_no_more_than_max_concurrency_run_at_once(server) -> None:
    global release
    release = asyncio.Event()  # an Event binds to the loop that first waits on it
    running.update(now=0, max=0)
    await capped.asubmit_many([(i,) for i in range(12)])
    await free.asubmit_many([(i,) for i in range(20)])
    async with running_worker(server, app, concurrency=16):
        await wait_for(lambda: running["now"] == 3)
        # The other function is not held back by this one's cap.
        await wait_for(lambda: server.count("function = 'free' AND state = 'succeeded'") == 20)
        assert running["now"] == 3
        release.set()
        await wait_for(lambda: server.count("function = 'capped' AND state = 'succeeded'") == 12)
    assert running["max"] == 3
