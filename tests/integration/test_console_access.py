"""Who may see and do what in the console (issue 17 points 3 and 4), over real HTTP: a
tenant's session sees and acts on its own tenant only; an action needs its CSRF token;
the session cookie is HttpOnly and SameSite=Strict and holds no key; a revoked key ends
its sessions; the admin picks a tenant; many viewers share one computation."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from sluice.worker.app import App
from tests.harness import Running, running_server

ADMIN_KEY = "sa_console-access-admin"
app = App("shop")


@app.task
async def resize(n: int) -> int:
    return n


@pytest.fixture
async def server(tmp_path: Path, backend: str) -> AsyncIterator[Running]:
    async with running_server(tmp_path, app, backend, admin_key=ADMIN_KEY) as srv:
        yield srv


@contextlib.asynccontextmanager
async def sign_in(server: Running, key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        answer = await client.post("/ui/signin", data={"key": key, "next": "/ui/tasks"})
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found[1]


async def submit(server: Running, key: str, n: int) -> str:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post("/v1/tasks", json={"function": "resize", "args": [n]},
                                 headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


async def test_a_tenants_session_sees_and_acts_on_its_own_tenant_only(server: Running) -> None:
    other = await server.node.tenants.create("rival")
    other_key = await server.node.tenants.create_key(other.id)
    await server.node.functions.register(other.id, [t.config for t in app.tasks.values()])
    mine, theirs = await submit(server, server.api_key, 1), await submit(server, other_key, 2)
    async with sign_in(server, server.api_key) as client:
        listed = await client.get("/ui/tasks")
        assert mine in listed.text and theirs not in listed.text
        assert (await client.get(f"/ui/tasks/{mine}")).status_code == 200
        page = await client.get(f"/ui/tasks/{theirs}")
        assert page.status_code == 404 and theirs not in page.text.replace(f"no task {theirs}", "")
        assert (await client.get(f"/ui/tasks/{theirs}/logs")).status_code == 404
        token = csrf_of(listed.text)
        cancel = await client.post(f"/ui/tasks/{theirs}/cancel", data={"csrf": token})
        assert cancel.status_code == 404
        # A bulk cancel of everything cancels this tenant's tasks, never the other's.
        done = await client.post("/ui/tasks/bulk", data={"csrf": token, "verb": "cancel"})
        assert done.status_code == 200, done.text
        assert (await client.get("/ui/tenants")).status_code == 403  # the admin's page
    assert (await server.node.tasks.get(other.id, theirs)).state != "cancelled"
    assert (await server.node.tasks.get(server.tenant_id, mine)).state == "cancelled"


async def test_an_action_needs_its_csrf_token_and_the_cookie_holds_no_key(
    server: Running,
) -> None:
    task_id = await submit(server, server.api_key, 1)
    client = httpx.AsyncClient(base_url=server.url, timeout=10)
    async with client:
        wrong = await client.post("/ui/signin", data={"key": "sk_wrong", "next": "/"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        answer = await client.post("/ui/signin", data={"key": server.api_key, "next": "//evil"})
        assert answer.headers["location"] == "/"  # never a redirect off the console
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert server.api_key not in cookie and server.api_key[3:20] not in cookie
        for forged in ({}, {"csrf": "not-the-token"}):
            refused = await client.post(f"/ui/tasks/{task_id}/cancel", data=forged)
            assert refused.status_code == 403 and "stale" in refused.text
        assert (await server.node.tasks.get(server.tenant_id, task_id)).state != "cancelled"
        page = await client.get(f"/ui/tasks/{task_id}")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        done = await client.post(f"/ui/tasks/{task_id}/cancel", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 303
    assert (await server.node.tasks.get(server.tenant_id, task_id)).state == "cancelled"
    # A forged or tampered cookie is no session.
    value = cookie.split(";")[0].split("=", 1)[1]
    body, signature = value.split(".")
    for bad in (f"{body}.x{signature[1:]}", f"x{body[1:]}.{signature}"):
        async with httpx.AsyncClient(base_url=server.url, cookies={"sluice_console": bad}) as other:
            answer = await other.get("/ui/tasks")
            assert answer.status_code == 303 and "/ui/signin" in answer.headers["location"]


async def test_a_revoked_key_ends_its_sessions(server: Running) -> None:
    key = await server.node.tenants.create_key(server.tenant_id)
    async with sign_in(server, key) as client:
        assert (await client.get("/ui/tasks")).status_code == 200
        keys = await server.node.tenants.keys(server.tenant_id)
        key_id = next(k.id for k in keys if key.startswith(k.prefix))
        await server.node.tenants.revoke_key(server.tenant_id, key_id)
        answer = await client.get("/ui/tasks")
        assert answer.status_code == 303 and "/ui/signin" in answer.headers["location"]


async def test_the_admin_picks_a_tenant_and_a_tenant_cannot(server: Running) -> None:
    mine = await submit(server, server.api_key, 1)
    async with sign_in(server, ADMIN_KEY) as client:
        home = await client.get("/")
        assert "Tenants and fairness" in home.text and "shop" in home.text
        asked = await client.get("/ui/tasks")
        assert asked.status_code == 400 and "pick a tenant" in asked.text
        switched = await client.post("/ui/tenant", data={"csrf": csrf_of(home.text),
                                     "tenant": server.tenant_id, "next": "/ui/tasks"})  # fmt: skip
        assert switched.status_code == 303
        assert mine in (await client.get("/ui/tasks")).text
    async with sign_in(server, server.api_key) as tenant:
        page = await tenant.get("/ui/tasks")
        refused = await tenant.post("/ui/tenant", data={"csrf": csrf_of(page.text), "tenant": ""})
        assert refused.status_code == 403


async def test_twenty_viewers_share_one_computation_of_the_live_figures(server: Running) -> None:
    console = server.asgi.app.state.console  # type: ignore[union-attr]
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(sign_in(server, server.api_key))
                   for _ in range(20)]  # fmt: skip
        before = console.shared.computed
        headers = {"hx-request": "true"}
        answers = await asyncio.gather(*(c.get("/ui/overview", headers=headers) for c in clients))
        assert {a.status_code for a in answers} == {200}
        assert console.shared.computed - before == 1


async def test_the_tasks_page_filters_by_time_in_utc_and_refuses_a_bad_one(
    server: Running,
) -> None:
    task_id = await submit(server, server.api_key, 1)
    async with sign_in(server, server.api_key) as client:
        after = await client.get("/ui/tasks", params={"created_after": "2000-01-01T00:00"})
        before = await client.get("/ui/tasks", params={"created_before": "2000-01-01T00:00:00"})
        assert task_id in after.text and task_id not in before.text
        assert 'value="2000-01-01T00:00:00"' in before.text  # the filter is shown as given
        bad = await client.get("/ui/tasks", params={"created_after": "yesterday"})
        assert bad.status_code == 400 and "created_after is a time in UTC" in bad.text
