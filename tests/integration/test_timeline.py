"""The timeline and the waterfall (DESIGN §8): true while a task runs, and ending with
the task's real final state on every path."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx

import sluice
from sluice.worker.context import TaskContext
from tests.harness import Running, running_server, running_worker, wait_for

app = sluice.App("timeline")
release = threading.Event()
LONG_BACKOFF = sluice.RetryPolicy(max_attempts=5, base_s=60.0, min_backoff_s=60.0, cap_s=60.0)


@app.task
def waits(ctx: TaskContext) -> str:
    while not release.is_set() and not ctx.wait(0.01):
        pass
    return "done"


@app.task(retry=LONG_BACKOFF)
def fails_then_waits_long(ctx: TaskContext) -> None:
    raise RuntimeError(f"attempt {ctx.attempt} fails")


@app.task(retry=sluice.RetryPolicy(max_attempts=2, base_s=0.01, min_backoff_s=0.0, cap_s=0.02))
def always_fails() -> None:
    raise RuntimeError("no")


@app.task
def quick() -> int:
    return 1


@app.task(rate=4.0, burst=1)
def metered() -> int:
    return 1


def _client(running: Running) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {running.api_key}"}
    return httpx.AsyncClient(base_url=running.url, headers=headers, timeout=30)


async def _submit(client: httpx.AsyncClient, function: str, **fields: Any) -> str:
    answer = await client.post("/v1/tasks", json={"function": function, **fields})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _task(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/tasks/{task_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _stages(task: dict[str, Any]) -> list[str]:
    return [entry["stage"] for entry in task["timeline"]]


def _in_order(task: dict[str, Any]) -> None:
    times = [entry["at"] for entry in task["timeline"]]
    assert times == sorted(times), task["timeline"]


async def test_a_running_task_shows_started_at_once_and_its_waterfall(tmp_path: Path) -> None:
    release.clear()
    async with (
        running_server(tmp_path, app) as running,
        running_worker(running, app),
        _client(running) as client,
    ):
        task_id = await _submit(client, "waits")

        async def started() -> dict[str, Any] | None:
            task = await _task(client, task_id)
            return task if "started" in _stages(task) else None

        task = await wait_for(started, timeout=5)
        assert task["state"] == "running"
        assert _stages(task) == ["submitted", "ready", "dispatched", "started"]
        (attempt,) = task["attempts"]
        assert attempt["outcome"] == "running"
        assert set(attempt["stages"]) == {"queued", "dispatched"}
        release.set()
        done = (await client.get(f"/v1/tasks/{task_id}/result", params={"timeout": 10})).json()
        assert _stages(done) == [
            "submitted", "ready", "dispatched", "started", "finished", "succeeded",
        ]  # fmt: skip
        stages = done["attempts"][0]["stages"]
        assert set(stages) == {"queued", "dispatched", "running", "reporting"}
        assert all(value >= 0 for value in stages.values())
        assert stages["running"] >= 0.0


async def test_a_task_retried_then_cancelled_ends_cancelled(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as running,
        running_worker(running, app),
        _client(running) as client,
    ):
        task_id = await _submit(client, "fails_then_waits_long")

        async def retrying() -> bool:
            task = await _task(client, task_id)
            return task["state"] == "scheduled" and task["attempt"] == 1

        await wait_for(retrying, timeout=10)
        assert (await client.post(f"/v1/tasks/{task_id}/cancel")).status_code == 200
        task = await _task(client, task_id)
        assert task["state"] == "cancelled"
        assert _stages(task)[-1] == "cancelled"
        assert "finished" in _stages(task)
        _in_order(task)


async def test_a_task_cancelled_while_paused_ends_cancelled(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as running, _client(running) as client:
        pause = await client.post("/v1/pauses", json={"selector": {"function": ["quick"]}})
        assert pause.status_code == 201, pause.text
        task_id = await _submit(client, "quick")
        assert (await _task(client, task_id))["state"] == "paused"
        await client.post(f"/v1/tasks/{task_id}/cancel")
        task = await _task(client, task_id)
        assert task["state"] == "cancelled"
        assert _stages(task)[0] == "submitted" and _stages(task)[-1] == "cancelled"
        _in_order(task)


async def test_an_expired_task_ends_expired(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as running, _client(running) as client:
        task_id = await _submit(client, "quick", ttl=0.05)  # no worker: it cannot start

        async def expired() -> dict[str, Any] | None:
            task = await _task(client, task_id)
            return task if task["state"] == "expired" else None

        task = await wait_for(expired, timeout=10)
        assert _stages(task)[-1] == "expired"
        _in_order(task)


async def test_a_dead_task_ends_dead_after_every_attempt(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as running,
        running_worker(running, app),
        _client(running) as client,
    ):
        task_id = await _submit(client, "always_fails")
        task = (await client.get(f"/v1/tasks/{task_id}/result", params={"timeout": 10})).json()
        assert task["state"] == "dead"
        stages = _stages(task)
        assert stages[-1] == "dead"
        assert [e["attempt"] for e in task["timeline"] if e["stage"] == "finished"] == [1, 2]
        assert [e["attempt"] for e in task["timeline"] if e["stage"] == "ready"] == [1, 2]
        assert all("queued" in a["stages"] for a in task["attempts"])
        _in_order(task)


async def test_a_task_held_by_its_functions_rate_shows_a_held_stage(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as running,
        _client(running) as client,
    ):
        ids = [await _submit(client, "metered") for _ in range(4)]  # 4/s, one at a time
        async with running_worker(running, app):
            done = [
                (await client.get(f"/v1/tasks/{i}/result", params={"timeout": 10})).json()
                for i in ids
            ]
        assert [t["state"] for t in done] == ["succeeded"] * 4
        held = sorted(t["attempts"][0]["stages"].get("held", 0.0) for t in done)
        # The first starts at once; each other waited for the rate, about 0.25 s apiece.
        assert held[0] < 0.1 and held[-1] >= 0.4
        for t in done:
            stages = t["attempts"][0]["stages"]
            wait = t["attempts"][0]["dispatched_at"] - t["attempts"][0]["ready_at"]
            assert abs(stages.get("held", 0.0) + stages["queued"] - wait) < 1e-3
