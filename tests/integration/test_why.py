"""Why a task waits (issue: observability, point B), end to end on SQLite and PostgreSQL
over real HTTP: `GET /v1/tasks/{id}/why`, the `waiting` field of `GET /v1/tasks/{id}`,
the client and `sluice why ID`, for a paused task, a delayed one, one no worker serves
and one queued behind others; a task that is not waiting is a 409."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import sluice
from sluice.cli.main import cli
from sluice.client import AsyncClient
from sluice.contract import FunctionConfig
from tests.harness import Running, running_server, running_worker, wait_for

app = sluice.App("why-shop")
gate: dict[str, asyncio.Event] = {}


@app.task
async def work(i: int) -> int:
    await gate["open"].wait()
    return i


@app.task
async def report(i: int) -> int:
    return i


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    gate["open"] = asyncio.Event()
    async with running_server(tmp_path, app, backend) as running:
        yield running
    gate["open"].set()


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def submit(http: httpx.AsyncClient, function: str, i: int = 0, **extra: object) -> str:
    made = await http.post("/v1/tasks", json={"function": function, "args": [i], **extra})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def test_a_waiting_task_says_why_through_the_api_the_client_and_the_cli(
    server: Running,
) -> None:
    await server.node.functions.register(server.tenant_id, [FunctionConfig(name="unserved")])
    async with (
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
        running_worker(server, app, concurrency=1),
    ):
        pause = (await http.post("/v1/pauses", json={"selector": {"function": ["report"]}})).json()
        paused = await submit(http, "report")
        delayed = await submit(http, "work", delay=600)
        unserved = await submit(http, "unserved")
        first = await submit(http, "work", 1)
        await wait_for(lambda: server.count("state = 'running'") == 1)
        queued = [await submit(http, "work", i) for i in range(2, 5)]

        answers = {
            name: (await http.get(f"/v1/tasks/{task_id}/why")).json()
            for name, task_id in (("paused", paused), ("delayed", delayed),
                                  ("unserved", unserved), ("last", queued[-1]))
        }  # fmt: skip
        task = (await http.get(f"/v1/tasks/{paused}")).json()
        running = await http.get(f"/v1/tasks/{first}/why")
        async with AsyncClient(server.url, server.api_key) as client:
            by_client = await client.tasks.why(queued[0])
        env = {"SLUICE_URL": server.url, "SLUICE_API_KEY": server.api_key}
        said = await asyncio.to_thread(CliRunner().invoke, cli, ["why", paused], env=env)
        gate["open"].set()

    assert answers["paused"]["reason"] == "paused"
    assert answers["paused"]["pause_id"] == pause["id"]
    assert answers["delayed"]["reason"] == "scheduled"
    assert answers["unserved"]["reason"] == "no_worker"
    assert answers["last"] == {
        "reason": "queued",
        "message": "queued behind 2 ready tasks of its function in fair order",
        "ahead": 2,
    }
    assert task["waiting"] == answers["paused"]
    assert running.status_code == 409
    assert running.json()["error"]["code"] == "task_not_waiting"
    assert (by_client.reason, by_client.ahead) == ("queued", 0)
    assert said.exit_code == 0, said.output
    assert said.output.startswith(f"paused: pause {pause['id']} holds it")


async def test_an_ended_task_carries_no_waiting_and_stats_reach_the_client(
    server: Running,
) -> None:
    gate["open"].set()
    async with (
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
        running_worker(server, app),
    ):
        task_id = await submit(http, "report", 7)
        await wait_for(lambda: server.count("state = 'succeeded'") == 1)
        task = (await http.get(f"/v1/tasks/{task_id}")).json()
    await server.node.meters.flush()
    async with AsyncClient(server.url, server.api_key) as client:
        stats = await client.stats(minutes=5)

    assert task["state"] == "succeeded"
    assert task["waiting"] is None
    assert (stats.totals.submitted, stats.totals.succeeded) == (1, 1)
