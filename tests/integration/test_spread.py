"""Load spreads over a worker's processes (issue 20 point 7): two CPU-bound tasks sent to
an idle `sluice worker --processes 2` run in the two processes at once, not one after the
other behind one process's GIL; and a backlog still drains through both."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, Running, process, running_server, wait_for
from tests.integration.spread_app import app

SPIN_S = 1.0
# Two processes spinning a core each: beside another test it would starve that test's
# timing (the AIMD pool test failed three full runs in a row), and it needs both cores
# idle to show the two tasks at once.
pytestmark = pytest.mark.alone


@pytest.fixture
async def server(tmp_path: Path, backend: str) -> AsyncIterator[Running]:
    async with running_server(tmp_path, app, backend) as srv:
        yield srv


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
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLUICE_URL": server.url,
           "SLUICE_API_KEY": server.api_key}  # fmt: skip
    argv = [sys.executable, "-m", "sluice", "worker", "tests.integration.spread_app:app",
            "--processes", "2", "--grace", "5"]  # fmt: skip
    headers = {"Authorization": f"Bearer {server.api_key}"}
    queues, registry = server.node.queues, server.node.registry

    def idle() -> bool:
        """Both processes connected, holding nothing, and the dispatcher's last look
        found their queue empty with nothing since (a round in flight would take a
        batch whole: spreading is the submit's, see DirectDispatch.plan)."""
        conns = list(registry)
        return (
            len(conns) == 2
            and all(not c.inflight for c in conns)
            and all(
                queues.empty.get((c.tenant_id, c.functions)) == queues.generation[c.tenant_id]
                for c in conns
            )
        )

    with process(argv, env, tmp_path / "worker.log"):
        await wait_for(lambda: len(registry) >= 2, timeout=30)
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as http:
            # A first task makes a round look at the (then empty) queue.
            first = await http.post("/v1/tasks", json={"function": "crunch", "args": [0.0]})
            await wait_for(lambda: results(http, [first.json()["id"]]), timeout=30)
            for together in (True, False):  # one batch; then two submits one after the other
                await wait_for(idle, timeout=30)
                if together:
                    batch = [{"function": "crunch", "args": [SPIN_S]}] * 2
                    answer = await http.post("/v1/tasks/batch", json={"tasks": batch})
                    ids = [t["id"] for t in answer.json()["tasks"]]
                else:
                    ids = [(await http.post("/v1/tasks", json={"function": "crunch",
                                                                "args": [SPIN_S]})).json()["id"]
                           for _ in range(2)]  # fmt: skip
                done = await wait_for(functools.partial(results, http, ids), timeout=30)
                a, b = done
                assert a["pid"] != b["pid"], done  # two processes...
                overlap = min(a["ended"], b["ended"]) - max(a["began"], b["began"])
                assert overlap > SPIN_S / 2, done  # ...at the same time
            # A backlog still drains through both processes.
            batch = [{"function": "crunch", "args": [0.0]}] * 200
            answer = await http.post("/v1/tasks/batch", json={"tasks": batch})
            ids = [t["id"] for t in answer.json()["tasks"]]
            done = await wait_for(lambda: results(http, ids), timeout=60)
            assert len({r["pid"] for r in done}) == 2
