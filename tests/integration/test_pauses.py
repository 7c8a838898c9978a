"""Pause and resume by selector, end to end on SQLite and PostgreSQL: waiting tasks are
held at once, new matching submissions are held too, running ones finish; lifting the
pause releases them; rules survive a restart and never reach another tenant."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

import sluice
from sluice.clock import FakeClock
from sluice.config import Settings
from sluice.contract import FunctionConfig, Selector, TaskSpec
from sluice.engine.node import Node
from sluice.store import ClaimRequest
from tests.harness import database_for, running_server, running_worker, wait_for

app = sluice.App("pauses")
gates: dict[str, asyncio.Event] = {}


@app.task
async def report(n: int) -> int:
    return n


@app.task
async def email(n: int) -> int:
    return n


@app.task
async def slow(name: str) -> str:
    await gates[name].wait()
    return name


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend) as running:
        app.configure(url=running.url, api_key=running.api_key)
        yield running
        if app._aclient is not None:
            await app._aclient.aclose()
        app.configure()


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_a_pause_holds_waiting_and_new_tasks_and_resume_releases_them(server) -> None:
    gates["long"] = asyncio.Event()
    async with (
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
        running_worker(server, app, concurrency=4),
    ):
        running = await slow.asubmit("long")
        await wait_for(lambda: server.count("state = 'running'") == 1)
        await report.asubmit_many([(i,) for i in range(50)])
        await email.asubmit_many([(i,) for i in range(30)])
        await report.asubmit_many([sluice.Call(args=(99,), delay=0.3)])  # scheduled

        made = await http.post("/v1/pauses", json={"selector": {"function": ["report", "slow"]}})
        assert made.status_code == 201, made.text
        pause = made.json()
        assert pause["selector"] == {"function": ["report", "slow"]}
        # Whatever report tasks already started (the worker was free) ran; the rest wait.
        await wait_for(lambda: server.count("function = 'email' AND state = 'succeeded'") == 30)
        held = server.count("state = 'paused'")
        assert held == pause["held"]
        assert held >= 1
        assert server.count("function = 'report' AND state IN ('ready', 'scheduled')") == 0

        late = await report.asubmit(7)
        assert (await http.get(f"/v1/tasks/{late.id}")).json()["state"] == "paused"
        gates["long"].set()  # the running task finishes under the pause
        assert (await running.aresult(timeout=10)) == "long"
        assert server.count("function = 'report' AND state = 'ready'") == 0

        listed = (await http.get("/v1/pauses")).json()["pauses"]
        assert [p["id"] for p in listed] == [pause["id"]]
        lifted = await http.delete(f"/v1/pauses/{pause['id']}")
        assert lifted.json() == {"released": held + 1}
        await wait_for(
            lambda: server.count("function = 'report' AND state = 'succeeded'") == 52, timeout=20
        )
        assert (await http.get("/v1/pauses")).json()["pauses"] == []


async def test_a_task_two_pauses_hold_waits_for_both(server) -> None:
    headers = auth(server.api_key)
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        await report.asubmit_many([sluice.Call(args=(i,), tags=["nightly"]) for i in range(5)])
        await report.asubmit_many([(i,) for i in range(5)])
        by_function = (
            await http.post("/v1/pauses", json={"selector": {"function": ["report"]}})
        ).json()
        by_tag = (await http.post("/v1/pauses", json={"selector": {"tags": ["nightly"]}})).json()
        assert (by_function["held"], by_tag["held"]) == (10, 0)

        lifted = (await http.delete(f"/v1/pauses/{by_function['id']}")).json()

        assert lifted == {"released": 5}  # the tagged five stay under the other pause
        assert server.count("state = 'paused'") == 5
        assert (await http.delete(f"/v1/pauses/{by_tag['id']}")).json() == {"released": 5}
        assert server.count("state = 'ready'") == 10


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        ({}, "selector"),
        ({"state": ["ready"]}, "selector.state"),
        ({"key": "k"}, "selector.key"),
        ({"priority_min": 12}, "selector.priority_min"),
    ],
)
async def test_a_pause_selects_by_function_tags_or_priority_only(
    tmp_path: Path, selector: dict[str, object], field: str
) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        answer = await http.post("/v1/pauses", json={"selector": selector})

        assert answer.status_code == 400
        assert answer.json()["error"]["field"] in (field, field.removeprefix("selector."))
        assert (await http.get("/v1/pauses")).json()["pauses"] == []


async def test_pauses_survive_a_restart_and_stay_with_their_tenant(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as first,
        httpx.AsyncClient(base_url=first.url, headers=auth(first.api_key)) as http,
    ):
        made = await http.post("/v1/pauses", json={"selector": {"function": ["email"]}})
        assert made.status_code == 201
    async with running_server(tmp_path, app) as second:  # the same database file
        headers = auth(second.api_key)
        async with httpx.AsyncClient(base_url=second.url, headers=headers) as http:
            held = await http.post("/v1/tasks", json={"function": "email", "args": [1]})
            assert held.json()["state"] == "paused"
            other = await second.node.tenants.ensure("outsider")
            theirs = auth(await second.node.tenants.create_key(other.id))
            assert (await http.get("/v1/pauses", headers=theirs)).json()["pauses"] == []
            pause_id = made.json()["id"]
            gone = await http.delete(f"/v1/pauses/{pause_id}", headers=theirs)
            assert (gone.status_code, gone.json()["error"]["code"]) == (404, "pause_not_found")
            assert len((await http.get("/v1/pauses")).json()["pauses"]) == 1


async def test_a_task_whose_lease_is_lost_under_a_pause_is_held_not_requeued(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    async with database_for("sqlite", tmp_path) as database:
        node = Node(Settings.from_env({}, database=database), clock=clock)
        await node.store.open()
        try:
            node.accepting = True  # the store is open; the loops are not needed here
            tenant = (await node.tenants.ensure("pauses")).id
            await node.functions.register(tenant, [FunctionConfig(name="report")])
            (made,) = await node.intake.submit(tenant, [TaskSpec(function="report")])
            request = ClaimRequest(tenant_id=tenant, worker="gone", functions=("report",), limit=1)
            (claimed,) = await node.store.claim_tasks([request], clock.now(), 30.0)
            assert [t.id for t in claimed] == [made.id]
            await node.pauses.pause(tenant, Selector(function=["report"]))

            clock.advance(31)  # the worker vanished: its lease runs out
            assert await node.reaper.reap_once() == 1

            assert (await node.tasks.get(tenant, made.id)).state == "paused"
        finally:
            await node.pauses.stop()
            await node.store.close()
