"""Cron schedules end to end: fired by the timers of a real server, run by a real worker,
paused, resumed and deleted over HTTP; refused clearly when malformed; invisible to other
tenants; and one task per fire time when three nodes fire the same schedule at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import msgspec
import pytest

import sluice
from sluice.clock import FakeClock
from sluice.config import Settings
from sluice.contract import FunctionConfig, ScheduleSpec, Selector
from sluice.engine.node import Node
from tests.harness import database_for, running_server, running_worker, wait_for

app = sluice.App("cron")


@app.task
async def beat(n: int) -> int:
    return n


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend) as running:
        yield running


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_an_every_second_schedule_fires_runs_pauses_resumes_and_goes(server) -> None:
    async with (
        running_worker(server, app),
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        made = await http.put(
            "/v1/schedules/heartbeat",
            json={"function": "beat", "cron": "* * * * * *", "kwargs": {"n": 7}},
        )
        assert made.status_code == 200, made.text
        assert made.json()["next_fire_at"] > made.json()["created_at"]

        await wait_for(lambda: server.count("state = 'succeeded'") >= 2, timeout=10)
        tasks = await server.node.tasks.find(server.tenant_id, Selector(), "", 100)
        assert {t.function for t in tasks} == {"beat"}
        assert all(t.key and t.key.startswith("sluice:cron:heartbeat:") for t in tasks)
        assert len({t.key for t in tasks}) == len(tasks)  # one task per fire time

        paused = (await http.post("/v1/schedules/heartbeat/pause")).json()
        assert paused["paused"] is True
        held = server.count()
        await asyncio.sleep(0)  # let a tick that read the state before the pause finish
        await wait_for(lambda: server.count() == held, timeout=5)
        resumed = (await http.post("/v1/schedules/heartbeat/resume")).json()
        assert resumed["paused"] is False
        await wait_for(lambda: server.count() > held, timeout=10)

        listed = (await http.get("/v1/schedules")).json()["schedules"]
        assert [s["name"] for s in listed] == ["heartbeat"]
        assert listed[0]["fired"] >= 3
        assert (await http.delete("/v1/schedules/heartbeat")).status_code == 204
        gone = await http.get("/v1/schedules/heartbeat")
        assert (gone.status_code, gone.json()["error"]["code"]) == (404, "schedule_not_found")


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        # The shape is the schema's (400); what croniter and the zone database say, 422.
        ({"function": "beat", "cron": "61 * * * *"}, 422, "invalid_cron", "cron"),
        ({"function": "beat", "cron": "0 0 31 2 *"}, 422, "never_fires", "cron"),
        ({"function": "beat", "cron": "0 0 1 1 * 2030 5"}, 400, "invalid_request", "cron"),
        ({"function": "beat", "cron": "* * * *"}, 400, "invalid_request", "cron"),
        ({"function": "beat", "cron": "* * * * *", "timezone": "Mars/Olympus"}, 422,
         "unknown_timezone", "timezone"),
        ({"function": "beat", "cron": "* * * * *", "timezone": "Europe"}, 422,
         "unknown_timezone", "timezone"),
        ({"function": "beat", "cron": "* * * * *", "timezone": "../../etc/passwd"}, 400,
         "invalid_request", "timezone"),
        ({"function": "beat", "cron": "* * * * *", "timezone": "E" * 10_000}, 400,
         "invalid_request", "timezone"),
        ({"function": "beat", "cron": "* * * * *", "catchup": "some"}, 400,
         "invalid_request", "catchup"),
        ({"function": "beat", "cron": "* * * * *", "priority": 12}, 400,
         "invalid_request", "priority"),
        ({"function": "nope", "cron": "* * * * *"}, 404, "unknown_function", "function"),
        ({"function": "beat"}, 400, "invalid_request", None),
        ({"function": "beat", "cron": "* * * * *", "every": 5}, 400, "invalid_request", "every"),
    ],
)  # fmt: skip
async def test_a_malformed_schedule_is_refused_and_nothing_is_stored(
    tmp_path: Path, body: dict[str, object], status: int, code: str, field: str | None
) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        answer = await http.put("/v1/schedules/bad", json=body)

        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert error["code"] == code
        if field is not None:
            assert error["field"] == field
        assert (await http.get("/v1/schedules")).json()["schedules"] == []


async def test_another_tenant_cannot_see_or_touch_a_schedule(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as server:
        other = await server.node.tenants.ensure("outsider")
        key = await server.node.tenants.create_key(other.id)
        async with httpx.AsyncClient(base_url=server.url) as http:
            made = await http.put(
                "/v1/schedules/mine", json={"function": "beat", "cron": "0 3 * * *"},
                headers=auth(server.api_key),
            )  # fmt: skip
            assert made.status_code == 200
            theirs = auth(key)
            assert (await http.get("/v1/schedules", headers=theirs)).json()["schedules"] == []
            for method, path in (
                ("GET", "/v1/schedules/mine"),
                ("DELETE", "/v1/schedules/mine"),
                ("POST", "/v1/schedules/mine/pause"),
                ("POST", "/v1/schedules/mine/resume"),
            ):
                answer = await http.request(method, path, headers=theirs)
                assert answer.status_code == 404
                assert answer.json()["error"]["code"] == "schedule_not_found"
            mine = (await http.get("/v1/schedules/mine", headers=auth(server.api_key))).json()
            assert mine["paused"] is False


async def test_three_nodes_firing_at_once_make_one_task_per_fire_time(
    tmp_path: Path, backend: str
) -> None:
    clock = FakeClock(1_800_000_000.0)
    async with database_for(backend, tmp_path) as database:
        settings = Settings.from_env({}, database=database)
        nodes = [Node(settings, clock=clock) for _ in range(3)]
        for node in nodes:
            await node.store.open()
        try:
            tenant = await nodes[0].tenants.ensure("cron")
            await nodes[0].functions.register(tenant.id, [FunctionConfig(name="beat")])
            spec = ScheduleSpec(function="beat", cron="* * * * *")
            await nodes[0].schedules.put(tenant.id, "minutely", spec)

            for _ in range(5):  # five minutes; every node ticks at once, as three leaders
                clock.advance(60)
                await asyncio.gather(*(n.schedules.tick() for n in nodes))

            tasks = await nodes[1].tasks.find(tenant.id, Selector(), "", 100)
            keys = sorted(t.key or "" for t in tasks)
            assert keys == [f"sluice:cron:minutely:{1_800_000_000 + 60 * i}" for i in range(1, 6)]
            (row,) = await nodes[2].store.list_schedules(tenant.id)
            assert (row.fired, row.skipped) == (5, 0)
        finally:
            for node in nodes:
                await node.store.close()


async def test_a_new_expression_starts_from_now_and_a_paused_schedule_stays_quiet(
    tmp_path: Path,
) -> None:
    clock = FakeClock(1_800_000_000.0)  # 2027-01-15 08:00 UTC
    async with database_for("sqlite", tmp_path) as database:
        node = Node(Settings.from_env({}, database=database), clock=clock)
        await node.store.open()
        try:
            tenant = (await node.tenants.ensure("cron")).id
            await node.functions.register(tenant, [FunctionConfig(name="beat")])
            daily = ScheduleSpec(function="beat", cron="0 3 * * *", max_catchup_s=86_400)
            await node.schedules.put(tenant, "job", daily)
            clock.advance(12 * 3600)

            every_ten = msgspec.structs.replace(daily, cron="*/10 * * * *")
            row = await node.schedules.put(tenant, "job", every_ten)
            assert await node.schedules.tick() == 0  # its past slots are not run
            assert row.next_fire_at == 1_800_000_000.0 + 12 * 3600 + 600
            clock.advance(600)
            assert await node.schedules.tick() == 1

            await node.schedules.pause(tenant, "job", True)
            replaced = await node.schedules.put(tenant, "job", daily)
            assert (replaced.paused, replaced.next_fire_at) == (True, None)
        finally:
            await node.store.close()
