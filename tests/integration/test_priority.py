"""Priorities never starve, end to end: under a flood of priority-9 work, priority-0 tasks
still get their floor share (2 %) of dispatches, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

import sluice
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("priority")
starts: list[int] = []  # the priority of each task, in the order the worker started them


@app.task
async def mark(priority: int) -> None:
    starts.append(priority)


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    starts.clear()
    async with running_server(tmp_path, app, backend) as running:
        app.configure(url=running.url, api_key=running.api_key)
        yield running
        if app._aclient is not None:
            await app._aclient.aclose()
        app.configure()


async def test_low_priority_work_gets_its_floor_under_a_flood_of_urgent_work(server) -> None:
    await mark.asubmit_many([sluice.Call(args=(9,), priority=9) for _ in range(2000)])
    await mark.asubmit_many([sluice.Call(args=(0,), priority=0) for _ in range(200)])

    async with running_worker(server, app, concurrency=8):
        await wait_for(lambda: len(starts) >= 1000, timeout=60)

    first = starts[:1000]
    # Strict priority would start no priority-0 task before the 2,000 urgent ones.
    assert first.index(0) < 120  # its credit fills after 50 dispatches, plus a round or two
    assert 10 <= first.count(0) <= 40  # 2 % of 1,000, with the probes of empty levels
