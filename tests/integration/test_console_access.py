"""Who may see and do what in the console (issue 17 points 3 and 4), over real HTTP: a
tenant's session sees and acts on its own tenant only; an action needs its CSRF token;
the session cookie is HttpOnly and SameSite=Strict and holds no key; a revoked key ends
its sessions; the admin picks a tenant; many viewers share one computation."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import hashlib
import hmac
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from aiohttp import web

from sluice.contract import TenantQuota
from sluice.dashboard.console import CONSOLE_SECRET, _js
from sluice.store.sqlite.database import SQLiteDatabase
from sluice.worker.app import App
from tests.harness import (
    Running,
    _running_server,
    database_for,
    free_port,
    running_server,
    wait_for,
)  # fmt: skip

ADMIN_KEY = "sa_console-access-admin"
app = App("shop")


@app.task
async def resize(n: int) -> int:
    return n


@app.task
async def thumbnail(n: int) -> int:
    return n


rival_app = App("rival")


@rival_app.task
async def audit_books(n: int) -> int:  # the other tenant's own function
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


def write(server: Running, statement: str) -> None:
    """Change the database directly (as a test's set-up: a task made dead)."""
    if server.database.startswith("postgresql://"):
        with psycopg.connect(server.database) as conn:
            conn.execute(statement.encode())
        return
    path = server.database.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute(statement)
        conn.commit()


async def test_a_tenants_session_sees_and_acts_on_no_other_tenants_pages(
    server: Running,
) -> None:
    """The cross-tenant checks on every other page and action: dead letters, pauses,
    schedules, event subscriptions, functions and the count before a bulk action."""
    other = await server.node.tenants.create("rival")
    other_key = await server.node.tenants.create_key(other.id)
    await server.node.functions.register(other.id, [t.config for t in rival_app.tasks.values()])
    auth = {"Authorization": f"Bearer {other_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=10) as rival:
        made = await rival.post("/v1/tasks", json={"function": "audit_books", "args": [1]})
        assert made.status_code == 201, made.text
        dead = made.json()["id"]
        made = await rival.post("/v1/tasks", json={"function": "audit_books", "args": [2]})
        waiting = made.json()["id"]
        pause = await rival.post("/v1/pauses", json={"selector": {"function": ["audit_books"]}})
        assert pause.status_code in (200, 201), pause.text
        pause_id = pause.json()["id"]
        schedule = {"function": "audit_books", "cron": "0 3 * * *", "args": [3]}
        made = await rival.put("/v1/schedules/rival-nightly", json=schedule)
        assert made.status_code in (200, 201), made.text
        made = await rival.put("/v1/subscriptions/rival-ledger",
                               json={"topic": "ledger", "function": "audit_books"})  # fmt: skip
        assert made.status_code in (200, 201), made.text
    write(server, "UPDATE tasks SET state = 'dead', finished_at = 1, "
                  f"error = 'KeyError: rival secret' WHERE id = '{dead}'")  # fmt: skip
    assert (await server.node.tasks.get(other.id, dead)).state == "dead"
    mine = await submit(server, server.api_key, 1)
    await server.node.meters.flush()  # the rollup and the backlog snapshot the overview reads
    await server.node.snapshot.take_once()
    theirs = [("/ui/dead", (dead, "rival secret")), ("/ui/pauses", (pause_id,)),
              ("/ui/schedules", ("rival-nightly",)), ("/ui/events", ("rival-ledger", "ledger")),
              ("/ui/functions", ("audit_books",)), ("/ui/tasks", ("audit_books", dead, waiting)),
              ("/", ("audit_books",))]  # fmt: skip
    async with sign_in(server, other_key) as client:  # the other tenant's console shows them
        for path, shown in theirs:
            page = await client.get(path)
            assert all(text in page.text for text in shown), (path, shown)
    async with sign_in(server, server.api_key) as client:
        assert mine in (await client.get("/ui/tasks")).text  # the pages show real data
        for path, hidden in theirs:
            page = await client.get(path)
            assert page.status_code == 200, (path, page.status_code)
            for text in hidden:
                assert text not in page.text, (path, text)
        token = csrf_of((await client.get("/ui/tasks")).text)
        retried = await client.post("/ui/dead/retry", data={"csrf": token, "ids": dead})
        assert retried.status_code == 200 and 'data-done="0"' in retried.text, retried.text
        lifted = await client.post(f"/ui/pauses/{pause_id}/lift", data={"csrf": token})
        assert lifted.status_code == 404, lifted.text
        paused = await client.post("/ui/schedules/rival-nightly/pause", data={"csrf": token})
        assert paused.status_code == 404, paused.text
        theirs_only = {"csrf": token, "verb": "cancel", "function": "audit_books"}
        counted = await client.post("/ui/tasks/count", data=theirs_only)
        assert counted.status_code == 200 and 'data-count="0"' in counted.text, counted.text
        cancel = await client.post(f"/ui/tasks/{waiting}/cancel", data={"csrf": token})
        assert cancel.status_code == 404
    # Nothing of the other tenant's changed.
    assert (await server.node.tasks.get(other.id, dead)).state == "dead"
    assert (await server.node.tasks.get(other.id, waiting)).state == "paused"
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=10) as rival:
        pauses = (await rival.get("/v1/pauses")).json()["pauses"]
        assert [p["id"] for p in pauses] == [pause_id]
        schedule_now = (await rival.get("/v1/schedules/rival-nightly")).json()
        assert schedule_now["paused"] is False


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

    def flip(text: str) -> str:  # another first character, whatever the first one is
        return ("y" if text[0] == "x" else "x") + text[1:]

    for bad in (f"{body}.{flip(signature)}", f"{flip(body)}.{signature}"):
        assert bad != value
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


RECORDING: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("sql", default=None)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_no_console_request_counts_or_offsets_over_the_tasks(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17 point 3: every page and the count before a bulk action, with the SQL
    each request reads recorded (requests run in this task through the ASGI transport,
    so the timers' own queries are not mixed in): no OFFSET, no DISTINCT, and a count
    over tasks only as a capped walk (`count(*) FROM (... LIMIT n)`)."""
    original = SQLiteDatabase._read

    async def traced(self: SQLiteDatabase, query: str, params: object = ()) -> list[object]:
        seen = RECORDING.get()
        if seen is not None:
            seen.append(query)
        return await original(self, query, params)

    monkeypatch.setattr(SQLiteDatabase, "_read", traced)
    ready = [await submit(server, server.api_key, n) for n in range(30)]
    write(server, "UPDATE tasks SET state = 'dead', finished_at = 1, error = 'ValueError: x' "
                  f"WHERE id = '{ready.pop()}'")  # fmt: skip
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        made = await http.post("/v1/pauses", json={"selector": {"tags": ["held"]}})
        assert made.status_code in (200, 201), made.text
        made = await http.post("/v1/tasks", json={"function": "resize", "args": [0],
                                                  "tags": ["held"], "key": "k-1"})  # fmt: skip
        assert made.status_code == 201, made.text
        nightly = {"function": "resize", "cron": "0 3 * * *", "args": [1]}
        made = await http.put("/v1/schedules/nightly", json=nightly)
        assert made.status_code in (200, 201), made.text
    await server.node.meters.flush()
    await server.node.snapshot.take_once()
    assert server.asgi is not None
    transport = httpx.ASGITransport(app=server.asgi)  # type: ignore[arg-type]
    pages = ["/", "/ui/tasks", "/ui/tasks?function=resize&state=ready", "/ui/tasks?state=dead",
             "/ui/tasks?tag=held", "/ui/tasks?key=k-1", "/ui/tasks?created_after=2000-01-01T00:00",
             f"/ui/tasks/{ready[0]}", f"/ui/tasks/{ready[-1]}", f"/ui/tasks/{ready[0]}/logs",
             "/ui/dead", "/ui/functions", "/ui/workers", "/ui/schedules", "/ui/pauses",
             "/ui/events"]  # fmt: skip
    recorded: list[str] = []
    async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
        signed = await client.post("/ui/signin", data={"key": server.api_key, "next": "/"})
        assert signed.status_code == 303
        token = csrf_of((await client.get("/ui/tasks")).text)
        RECORDING.set(recorded)
        for path in pages:
            answer = await client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
        live = await client.get("/ui/overview", headers={"hx-request": "true"})
        assert live.status_code == 200
        ready_ones = {"csrf": token, "verb": "cancel", "state": "ready"}
        counted = await client.post("/ui/tasks/count", data=ready_ones)
        assert 'data-count="29"' in counted.text, counted.text
        RECORDING.set(None)
    assert any("tasks" in q for q in recorded)  # the recorder saw the pages' reads
    for query in recorded:
        flat = " ".join(query.split()).lower()
        assert " offset " not in flat and "distinct" not in flat, flat
        if "count(" in flat and "tasks" in flat:
            assert re.search(r"count\(\*\) from \(.* limit ", flat), flat


def charted(html: str) -> dict[str, list[float]]:
    """The data of the overview's charts, as the page hands it to the chart code."""
    found = re.search(r'<script type="application/json" class="series">(.*?)</script>', html)
    assert found, html[:500]
    return dict(json.loads(found[1]))


async def test_the_overview_charts_one_function_over_time(server: Running) -> None:
    """Issue 17 point 2: throughput, latency and failures over time by function."""
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        for function, n in (("resize", 3), ("thumbnail", 5)):
            batch = [{"function": function, "args": [i]} for i in range(n)]
            answer = await http.post("/v1/tasks/batch", json={"tasks": batch})
            assert answer.status_code in (200, 201), answer.text
    await server.node.meters.flush()
    await server.node.snapshot.take_once()
    async with sign_in(server, server.api_key) as client:
        every = await client.get("/")
        assert sum(charted(every.text)["submitted"]) == 8
        assert 'href="/?function=thumbnail"' in every.text  # the way to one function's charts
        one = await client.get("/", params={"function": "thumbnail"})
        assert sum(charted(one.text)["submitted"]) == 5 and "function thumbnail" in one.text
        assert 'hx-get="/ui/overview?function=thumbnail"' in one.text  # stays on it live
        live = await client.get("/ui/overview", params={"function": "resize"},
                                headers={"hx-request": "true"})  # fmt: skip
        assert sum(charted(live.text)["submitted"]) == 3
        none = await client.get("/", params={"function": "no-such"})
        assert none.status_code == 200 and sum(charted(none.text)["submitted"]) == 0
        # The figures above the charts stay the tenant's.
        assert 'data-kpi="submitted">8<' in one.text


async def test_the_tenants_page_says_who_is_refused_and_why(server: Running) -> None:
    """Issue 17 point 2: tenants and fairness, who is being refused and why."""
    await server.node.quotas.set(server.tenant_id, TenantQuota(max_queued=1))
    headers = {"Authorization": f"Bearer {server.api_key}"}
    batch = {"tasks": [{"function": "resize", "args": [i]} for i in range(2)]}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        refused = await http.post("/v1/tasks/batch", json=batch)
        assert refused.status_code == 429, refused.text
    async with sign_in(server, ADMIN_KEY) as admin:
        page = await admin.get("/ui/tenants")
        assert page.status_code == 200
        row = re.search(r"<tr>\s*<th[^>]*>.*?>shop</button>.*?</tr>", page.text, re.S)
        assert row, page.text[:2000]
        assert "refused so far: 2 over its quota" in row[0], row[0]
        assert "max_queued 1" in row[0]


async def test_the_functions_page_charts_a_targets_adaptive_limit_over_time(
    tmp_path: Path, backend: str
) -> None:
    """Issue 17 point 2: functions, with the AIMD limit over time of an HTTP target."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response("done")

    web_app = web.Application()
    web_app.router.add_post("/echo", answer)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with running_server(tmp_path, app, backend, admin_key=ADMIN_KEY,
                                  targets_allow_loopback=True) as server:  # fmt: skip
            headers = {"Authorization": f"Bearer {server.api_key}"}
            async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
                target = {"target": {"url": f"http://127.0.0.1:{port}/echo", "timeout_s": 1.0}}
                put = await http.put("/v1/functions/echo", json=target)
                assert put.status_code == 200, put.text
                made = await http.post("/v1/tasks", json={"function": "echo", "args": [1]})
                task_id = made.json()["id"]

                async def done() -> bool:
                    return (await http.get(f"/v1/tasks/{task_id}")).json()["state"] == "succeeded"

                await wait_for(done, timeout=20)
            for _ in range(3):  # as the node's timer samples the limits
                server.node.limit_history.sample()

            def points() -> int:  # the node's own timer may add one meanwhile
                return len(server.node.limit_history.of(server.tenant_id).get("echo", []))

            async with sign_in(server, server.api_key) as client:
                before = points()
                page = await client.get("/ui/functions")
                after = points()
        assert 'data-chart="aimd" data-key="echo"' in page.text, page.text[:3000]
        found = re.search(r'<script type="application/json" class="aimd-series">(.*?)</script>',
                          page.text)  # fmt: skip
        assert found
        echo = json.loads(found[1])["echo"]
        assert 3 <= before <= len(echo["t"]) <= after, (before, echo, after)
        assert all(limit >= 1 for limit in echo["limit"]), echo
    finally:
        await runner.cleanup()


async def test_every_console_action_is_refused_without_its_csrf_token(server: Running) -> None:
    """Issue 17 point 4: every POST of the console but signing in needs the token."""
    from sluice.dashboard.pages import ROUTES  # after sluice.api (which it imports)

    task_id = await submit(server, server.api_key, 1)
    actions = [path for method, path, _ in ROUTES if method == "POST" and path != "/ui/signin"]
    assert len(actions) >= 10, actions
    fill = {"task_id:str": task_id, "verb:str": "cancel", "name:str": "nightly",
            "pause_id:str": "p", "webhook_id:str": "w"}  # fmt: skip
    async with sign_in(server, server.api_key) as client:
        for path in actions:
            url = re.sub(r"\{([^}]+)\}", lambda m: fill[m[1]], path)
            refused = await client.post(url, data={"verb": "cancel", "tenant": ""})
            assert refused.status_code == 403 and "stale" in refused.text, (url, refused.text)
        assert (await client.get("/ui/tasks")).status_code == 200  # still signed in
    assert (await server.node.tasks.get(server.tenant_id, task_id)).state != "cancelled"


async def test_the_admin_looking_at_a_tenant_sees_its_workers_and_the_shared_pools(
    tmp_path: Path, backend: str
) -> None:
    """The workers page, for the admin looking at one tenant: that tenant's own workers
    and the shared pools' (which serve it too), not another tenant's."""
    from tests.harness import running_worker

    pool_key = "pool-key-for-the-console"
    async with running_server(tmp_path, app, backend, admin_key=ADMIN_KEY,
                              pool_key=pool_key) as server:  # fmt: skip
        other = await server.node.tenants.ensure("books")
        other_key = await server.node.tenants.create_key(other.id)
        async with (
            running_worker(server, app, worker_id="own-worker"),
            running_worker(server, app, worker_id="shared-worker", api_key=pool_key),
            running_worker(server, app, worker_id="books-worker", api_key=other_key),
            sign_in(server, ADMIN_KEY) as client,
        ):
            home = await client.get("/")
            form = {"csrf": csrf_of(home.text), "tenant": server.tenant_id, "next": "/ui/workers"}
            switched = await client.post("/ui/tenant", data=form)
            assert switched.status_code == 303
            page = (await client.get("/ui/workers")).text
    assert "own-worker" in page and "shared-worker" in page
    assert "books-worker" not in page


async def test_signing_in_is_held_to_the_apis_guessing_limit_and_to_this_site(
    tmp_path: Path,
) -> None:
    async with (
        running_server(tmp_path, app, admin_key=ADMIN_KEY, max_auth_failures=3) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        # A form posted from another site's page would sign the visitor in with that
        # site's key (login CSRF): refused, whoever's key it carries.
        for headers in ({"sec-fetch-site": "cross-site"}, {"origin": "http://127.0.0.2:9"}):
            crossed = await client.post("/ui/signin", headers=headers,
                                        data={"key": server.api_key, "next": "/"})  # fmt: skip
            assert crossed.status_code == 403 and "set-cookie" not in crossed.headers
        own = {"origin": server.url, "sec-fetch-site": "same-origin"}
        for _ in range(3):
            wrong = await client.post("/ui/signin", data={"key": "sk_guess"}, headers=own)
            assert wrong.status_code == 401
        # Past the limit, the right key too waits out the minute: guessing cannot go on
        # here any more than on the API (and the API counts the console's guesses).
        right = await client.post("/ui/signin", data={"key": ADMIN_KEY}, headers=own)
        assert right.status_code == 429 and "set-cookie" not in right.headers
        api = await client.get("/v1/tenants", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert api.status_code == 429


ELSEWHERE = ["/\t/127.0.0.2:9/x", "/\n/x", "/\u3002", "/ui/tasks x", "/\\127.0.0.2",
             "//127.0.0.2", "https://127.0.0.2/"]  # fmt: skip


@pytest.mark.parametrize("next_", ELSEWHERE)
async def test_after_signing_in_the_console_only_goes_to_its_own_pages(
    tmp_path: Path, next_: str
) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        signed = await client.post("/ui/signin", data={"key": server.api_key, "next": next_})
        assert signed.status_code == 303
        assert signed.headers["location"] == "/"
        page = await client.get("/ui/signin", params={"next": next_})
        assert page.status_code == 200 and 'name="next" value="/"' in page.text


async def test_sessions_are_signed_with_the_clusters_own_key_not_the_admin_keys(
    tmp_path: Path,
) -> None:
    # Derived from the admin key, the signing key let a tenant test guesses of the admin
    # key offline against its own cookie's signature.
    async with running_server(tmp_path, app, admin_key=ADMIN_KEY) as server:
        async with sign_in(server, server.api_key) as client:
            cookie = client.cookies["sluice_console"]
            assert (await client.get("/ui/tasks")).status_code == 200
        body, signature = cookie.split(".")
        kept = await server.node.store.keep_secret(CONSOLE_SECRET, b"another node's", 0.0)
        assert len(kept) == 32

        def signed(key: bytes) -> str:
            mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
            return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

        assert signature == signed(kept)
        derived = hashlib.sha256(b"sluice console key:" + ADMIN_KEY.encode()).digest()
        assert signature != signed(derived)


async def test_a_session_made_on_one_node_holds_on_the_others(tmp_path: Path) -> None:
    # A load balancer may send each request to any node: they share the key the first
    # node made and kept in the store.
    async with (
        database_for("postgres", tmp_path) as database,
        _running_server(database, app, node_id="node-a") as a,
        _running_server(database, app, node_id="node-b") as b,
    ):
        async with sign_in(a, a.api_key) as client:
            cookie = client.cookies["sluice_console"]
        async with httpx.AsyncClient(base_url=b.url, cookies={"sluice_console": cookie}) as other:
            page = await other.get("/ui/tasks")
        assert page.status_code == 200 and "/ui/signin" not in str(page.url)


async def test_the_cookie_is_secure_when_a_trusted_proxy_says_the_request_was_https(
    tmp_path: Path,
) -> None:
    # TLS ended at a load balancer (the node serves HTTP): uvicorn takes the scheme from
    # X-Forwarded-Proto of the proxies FORWARDED_ALLOW_IPS trusts (127.0.0.1 by default).
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as client,
    ):
        plain = await client.post("/ui/signin", data={"key": server.api_key, "next": "/"})
        assert "Secure" not in plain.headers["set-cookie"]
        proxied = await client.post("/ui/signin", data={"key": server.api_key, "next": "/"},
                                    headers={"x-forwarded-proto": "https"})  # fmt: skip
        assert proxied.status_code == 303
        assert "; Secure" in proxied.headers["set-cookie"]


def test_json_in_a_page_cannot_end_or_bend_its_script_block() -> None:
    text = _js({"a": "</script><!--<script>&amp;"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!--<script>&amp;"}
