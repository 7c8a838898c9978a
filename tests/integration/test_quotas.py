"""Tenant quotas, end to end on SQLite and PostgreSQL: past its most waiting tasks a
tenant's submit gets 429 with a clear code and Retry-After, other tenants are unaffected,
the tenant gets in again once tasks have run; a payload quota answers 413."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import sluice
from tests.harness import running_server, running_worker, wait_for

ADMIN = "admin-secret-key"
app = sluice.App("quotas")


@app.task
async def job(n: int) -> int:
    return n


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend, admin_key=ADMIN) as running:
        yield running


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_a_tenant_past_its_queue_quota_gets_429_until_its_tasks_run(server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        path = f"/v1/tenants/{server.tenant_id}/quota"
        set_ = await http.put(path, json={"max_queued": 50}, headers=auth(ADMIN))
        assert set_.json()["max_queued"] == 50 and set_.json()["weight"] == 1.0
        bad = await http.put(path, json={"weight": 0}, headers=auth(ADMIN))
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "weight"
        assert (await http.get(path, headers=auth(ADMIN))).json()["max_queued"] == 50
        assert (await http.get(path, headers=auth(server.api_key))).status_code == 404

        mine = auth(server.api_key)
        batch = {"tasks": [{"function": "job", "args": [i]} for i in range(50)]}
        assert (await http.post("/v1/tasks/batch", json=batch, headers=mine)).status_code == 201
        refused = await http.post("/v1/tasks", json={"function": "job", "args": [0]}, headers=mine)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert refused.json()["error"]["field"] == "tasks"
        assert server.count() == 50  # nothing of the refused submit was stored

        other = await server.node.tenants.ensure("neighbour")
        await server.node.functions.register(other.id, [app.tasks["job"].config])
        theirs = auth(await server.node.tenants.create_key(other.id))
        fine = await http.post("/v1/tasks", json={"function": "job", "args": [1]}, headers=theirs)
        assert fine.status_code == 201  # another tenant's quota is not this one's

        async with running_worker(server, app):
            await wait_for(lambda: server.count("state = 'succeeded'") == 50)

        async def admitted() -> bool:  # the count is read again within a second
            again = await http.post("/v1/tasks", json={"function": "job"}, headers=mine)
            return again.status_code == 201

        await wait_for(admitted, timeout=5, interval=0.2)


async def test_a_payload_quota_answers_413_below_the_server_limit(server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        path = f"/v1/tenants/{server.tenant_id}/quota"
        await http.put(path, json={"max_payload_bytes": 100}, headers=auth(ADMIN))
        big = await http.post(
            "/v1/tasks", json={"function": "job", "args": ["x" * 200]},
            headers=auth(server.api_key),
        )  # fmt: skip
        assert (big.status_code, big.json()["error"]["field"]) == (413, "args")
        bad = await http.put(path, json={"max_queued": 0}, headers=auth(ADMIN))
        assert (bad.status_code, bad.json()["error"]["field"]) == (400, "max_queued")
        assert server.count() == 0
