"""Load spreads over a worker's processes (issue 20 point 7): two CPU-bound tasks sent to
an idle `sluice worker --processes 2` run in the two processes at once, not one after the
other behind one process's GIL; and a backlog still drains through both."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, Running, process, running_server, wait_for
from tests.integration.spread_app import app

SPIN_S = 1.0


@pytest.fixture
async def server(tmp_path: Path, backend: str) -> AsyncIterator[Running]:
    async with running_server(tmp_path, app, backend) as srv:
        yield srv


@contextlib.contextmanager
def two_processes(server: Running, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLUICE_URL": server.url,
           "SLUICE_API_KEY": server.api_key}  # fmt: skip
    argv = [sys.executable, "-m", "sluice", "worker", "tests.integration.spread_app:app",
            "--processes", "2", "--grace", "5"]  # fmt: skip
    with process(argv, env, log) as proc:
        yield proc


async def results(http: httpx.AsyncClient, ids: list[str]) -> list[dict[str, float]] | None:
    found = []
    for task_id in ids:
        task = (await http.get(f"/v1/tasks/{task_id}")).json()
        if task["state"] != "succeeded":
            return None
        found.append(task["result"])
    return found


async def test_two_cpu_bound_tasks_run_in_two_processes_at_once(
    server: Running, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with two_processes(server, tmp_path / "worker.log"):
        await wait_for(lambda: len(server.node.registry) >= 2, timeout=30)
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as http:
            for together in (True, False):  # one batch; then two submits one after the other
                if together:
                    batch = [{"function": "crunch", "args": [SPIN_S]}] * 2
                    answer = await http.post("/v1/tasks/batch", json={"tasks": batch})
                    ids = [t["id"] for t in answer.json()["tasks"]]
                else:
                    ids = [(await http.post("/v1/tasks", json={"function": "crunch",
                                                                "args": [SPIN_S]})).json()["id"]
                           for _ in range(2)]  # fmt: skip
                done = await wait_for(lambda ids=ids: results(http, ids), timeout=30)
                a, b = done
                assert a["pid"] != b["pid"], done  # two processes...
                overlap = min(a["ended"], b["ended"]) - max(a["began"], b["began"])
                assert overlap > SPIN_S / 2, done  # ...at the same time
            # A backlog still drains through both processes, at full batches.
            batch = [{"function": "crunch", "args": [0.0]}] * 200
            answer = await http.post("/v1/tasks/batch", json={"tasks": batch})
            ids = [t["id"] for t in answer.json()["tasks"]]
            done = await wait_for(lambda: results(http, ids), timeout=60)
            assert len({r["pid"] for r in done}) == 2
