"""`GET /v1/scaling/{pool}` over real HTTP (issue 18, point 4): the KEDA metrics-api
figure. It takes a tenant's key, the pool key or the admin key (401 without one), names
its pools with a 404 otherwise, refuses malformed function names with a 400, counts
what workers would run, and two server nodes on PostgreSQL answer the same value."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

import sluice
from sluice.contract import TaskSpec
from sluice.model import SHARED
from tests.harness import _running_server, database_for, running_server, running_worker, wait_for

pytestmark = pytest.mark.xdist_group("timing")
POOL_KEY = "pool-key-for-scaling-tests-0123456789"
ADMIN_KEY = "admin-key-for-scaling-tests-0123456789"

app = sluice.App("scaling")
release = threading.Event()


@app.task
def hold() -> None:
    release.wait(30)


@app.task
def idle() -> None:
    pass


async def get(url: str, key: str | None, pool: str = "default", **params: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{url}/v1/scaling/{pool}", headers=headers, params=params)


async def _running(url: str, key: str) -> bool:
    return bool((await get(url, key)).json()["running"] == 2)


async def test_the_signal_counts_ready_and_running_tasks_of_the_pools_functions(
    tmp_path: Path, backend: str
) -> None:
    release.clear()
    async with running_server(tmp_path, app, backend) as srv:
        await srv.node.intake.submit(srv.tenant_id, [TaskSpec(function="hold")] * 5)
        await srv.node.intake.submit(srv.tenant_id, [TaskSpec(function="idle", delay=600)])
        async with running_worker(srv, app, concurrency=2):
            await wait_for(lambda: _running(srv.url, srv.api_key))
            answer = (await get(srv.url, srv.api_key)).json()
            only_idle = (await get(srv.url, srv.api_key, functions="idle")).json()
            release.set()
    assert answer["load"] == 5 and answer["ready_dispatchable"] == 3
    assert answer["functions"] == ["hold", "idle"]
    assert (answer["due_soon"], answer["capped"]) == (0, False)  # 600 s away: not soon
    assert answer["held"] == {"paused": 0, "tenant_quota": 0, "rate_limit": 0,
                              "concurrency_limit": 0, "aimd_limit": 0}  # fmt: skip
    assert only_idle["load"] == 0 and only_idle["functions"] == ["idle"]


async def test_the_signal_takes_keys_names_its_pools_and_refuses_bad_input(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, app, pool_key=POOL_KEY, admin_key=ADMIN_KEY) as srv:
        await srv.node.functions.register(SHARED, [app.tasks["idle"].config])
        await srv.node.intake.submit(srv.tenant_id, [TaskSpec(function="idle")] * 3)
        # A tenant that never registered `idle` itself: its tasks are the shared pool's.
        walk_in = await srv.node.tenants.ensure("walk-in")
        await srv.node.intake.submit(walk_in.id, [TaskSpec(function="idle")] * 2)

        missing = await get(srv.url, None)
        wrong = await get(srv.url, "sk_nope")
        other_pool = await get(srv.url, srv.api_key, "someone-else")
        bad_name = await get(srv.url, srv.api_key, functions="no spaces")
        mine = await get(srv.url, srv.api_key, srv.tenant_id)
        shared = await get(srv.url, POOL_KEY)
        admin_shared = await get(srv.url, ADMIN_KEY, "shared")
        admin_tenant = await get(srv.url, ADMIN_KEY, srv.tenant_id)
        admin_default = await get(srv.url, ADMIN_KEY)
        admin_unknown = await get(srv.url, ADMIN_KEY, "t-unknown")

    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_key")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_key")
    assert other_pool.status_code == 404
    assert other_pool.json()["error"]["code"] == "pool_not_found"
    assert "default" in other_pool.json()["error"]["message"]
    assert (bad_name.status_code, bad_name.json()["error"]["field"]) == (400, "functions")
    assert mine.json()["load"] == 3
    # The shared pool serves `idle` for tenants that did not register it themselves: the
    # walk-in's 2 count, not the 3 of the tenant whose own workers alone take its `idle`
    # (as the shared claims leave them).
    assert shared.json()["load"] == admin_shared.json()["load"] == 2
    assert admin_tenant.json()["load"] == 3
    assert admin_default.json()["error"]["code"] == "pool_not_found"
    assert admin_unknown.json()["error"]["code"] == "tenant_not_found"


async def test_two_server_nodes_on_postgresql_answer_the_same_value(tmp_path: Path) -> None:
    async with (
        database_for("postgres", tmp_path) as database,
        _running_server(database, app, node_id="node-a") as a,
        _running_server(database, app, node_id="node-b") as b,
    ):
        await a.node.intake.submit(a.tenant_id, [TaskSpec(function="idle")] * 7)
        await b.node.intake.submit(b.tenant_id, [TaskSpec(function="idle", delay=5)] * 2)
        from_a = (await get(a.url, a.api_key)).json()
        from_b = (await get(b.url, b.api_key)).json()
    assert a.tenant_id == b.tenant_id
    for answer in (from_a, from_b):
        del answer["oldest_ready_age_seconds"]  # read a few ms apart
    assert from_a == from_b
    assert (from_a["load"], from_a["ready_dispatchable"], from_a["due_soon"]) == (9, 7, 2)
