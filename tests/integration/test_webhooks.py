"""Webhooks (issue 19, point 1), end to end on SQLite and PostgreSQL, with a real
receiver on loopback: deliveries are signed (Standard Webhooks v1, checked with the
client's helper, through a key rotation), come from the outbox written with each end
(succeeded, failed attempt, dead, cancelled, expired), keep each task's order, reach a
receiver that was down for a while, and a receiver failing for long is disabled, shown,
and re-enabled. The SIGKILL case is tests/acceptance/test_notify_crash.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

import sluice
from sluice.client import AsyncClient
from sluice.engine.signatures import new_secret
from tests.harness import Running, running_server, running_worker, wait_for

app = sluice.App("hooks")
FAST_NOTIFY = {
    "webhooks_allow_loopback": True,
    "notify_interval_s": 0.05,
    "webhook_retry_s": "0.2,0.2,0.2,0.2",
}


@app.task(retry=sluice.RetryPolicy(max_attempts=2, base_s=0.05, min_backoff_s=0.05, cap_s=0.1))
def work(n: int) -> int:
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n * 2


@app.task
async def hold(s: float) -> None:
    await asyncio.sleep(s)


class Receiver:
    """A webhook endpoint: records every delivery; answers `status` while it is set."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.status = 200

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append((dict(request.headers), body))
        return web.Response(status=self.status, text="thanks" if self.status < 300 else "down")

    def delivered(self) -> list[tuple[str, dict[str, Any]]]:
        """(webhook-id, body) of each delivery answered 2xx... or all, for the order."""
        return [(h["webhook-id"], json.loads(b)) for h, b in self.got]


def bound() -> socket.socket:
    """A loopback port of our own at once (no other test can take it meanwhile); until
    something listens on it, connections to it are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    r = Receiver()
    web_app = web.Application()
    web_app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    sock = bound()
    await web.SockSite(runner, sock).start()
    try:
        yield r, f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        await runner.cleanup()


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend, **FAST_NOTIFY) as srv:
        yield srv


async def hook(c: AsyncClient, url: str, **webhook: Any) -> str:
    """Set the function's webhook; returns its secret (shown once)."""
    put = await c.functions.set("work", {"webhooks": [{"url": url, **webhook}]})
    assert put.webhooks[0].secrets, "the made secret is shown in the PUT's answer"
    return put.webhooks[0].secrets[0]


async def test_a_success_is_delivered_signed_and_verifies_with_the_client_helper(
    server: Running,
) -> None:
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        secret = await hook(c, url)
        assert (await c.functions.get("work")).webhooks[0].secrets == []  # reads hide it
        async with running_worker(server, app):
            task = await c.submit({"function": "work", "args": [21]})
            await wait_for(lambda: r.got, timeout=10)
        headers, body = r.got[0]
        sent = sluice.verify_webhook(secret, headers, body)
        assert sent["type"] == "task.succeeded"
        assert sent["data"]["task_id"] == task.id and sent["data"]["result"] == 42
        assert headers["webhook-id"].startswith("msg_")
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
        with pytest.raises(sluice.InvalidSignature):
            sluice.verify_webhook(new_secret(), headers, body)
        with pytest.raises(sluice.InvalidSignature):
            sluice.verify_webhook(secret, headers, body + b" ")
        with pytest.raises(sluice.InvalidSignature):  # replayed an hour later
            sluice.verify_webhook(secret, headers, body, now=time.time() + 3600)
        [delivery] = await wait_for(
            lambda: _settled(c, task.id), timeout=10
        )  # the answer is kept with it
        assert (delivery.state, delivery.status, delivery.answer) == ("delivered", 200, "thanks")
        assert delivery.id == headers["webhook-id"] and delivery.event == "succeeded"


async def _settled(c: AsyncClient, task_id: str) -> list[Any]:
    found = await c.tasks.notifications(task_id)
    return found if found and all(d.state != "pending" for d in found) else []


async def test_during_a_rotation_both_secrets_sign(server: Running) -> None:
    old, new = new_secret(), new_secret()
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        await c.functions.set("work", {"webhooks": [{"url": url, "secrets": [new, old]}]})
        async with running_worker(server, app):
            await c.submit({"function": "work", "args": [1]})
            await wait_for(lambda: r.got, timeout=10)
        headers, body = r.got[0]
        assert len(headers["webhook-signature"].split()) == 2
        assert sluice.verify_webhook(old, headers, body)["type"] == "task.succeeded"
        assert sluice.verify_webhook(new, headers, body)["type"] == "task.succeeded"


async def test_every_end_notifies_in_order_per_task(server: Running) -> None:
    events = ["succeeded", "failed", "dead", "cancelled", "expired"]
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        await hook(c, url, events=events)
        async with running_worker(server, app):
            failing = await c.submit({"function": "work", "args": [-1]})
            await wait_for(lambda: len(r.got) >= 2, timeout=10)
        # No worker now: one waits to be cancelled, one expires before it starts.
        cancelled = await c.submit({"function": "work", "args": [2]})
        await c.tasks.cancel(cancelled.id)
        expired = await c.submit({"function": "work", "args": [3], "ttl": 0.1})
        await wait_for(lambda: len(r.got) >= 4, timeout=10)
    by_task: dict[str, list[str]] = {}
    for _, sent in r.delivered():
        by_task.setdefault(sent["data"]["task_id"], []).append(sent["type"])
    assert by_task[failing.id] == ["task.failed", "task.dead"]  # its attempts' order
    assert by_task[cancelled.id] == ["task.cancelled"]
    assert by_task[expired.id] == ["task.expired"]
    dead = next(s for _, s in r.delivered() if s["type"] == "task.dead")
    assert "negative: -1" in dead["data"]["error"]


async def test_a_receiver_down_for_a_while_gets_every_event_afterwards(server: Running) -> None:
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        await hook(c, url)
        r.status = 503
        async with running_worker(server, app):
            tasks = [await c.submit({"function": "work", "args": [n]}) for n in range(5)]
            await wait_for(lambda: len(r.got) >= 10, timeout=10)  # tried, refused, tried
            r.status = 200
            await wait_for(lambda: _all_settled(c, [t.id for t in tasks]), timeout=10, interval=0.1)
    ids: dict[str, set[str]] = {}
    for headers, body in r.got:
        ids.setdefault(json.loads(body)["data"]["task_id"], set()).add(headers["webhook-id"])
    # Every task's event got through, tried under one webhook-id throughout.
    assert sorted(ids) == sorted(t.id for t in tasks)
    assert all(len(found) == 1 for found in ids.values())


async def _all_settled(c: AsyncClient, ids: list[str]) -> bool:
    for task_id in ids:
        found = await c.tasks.notifications(task_id)
        if not found or any(d.state != "delivered" for d in found):
            return False
    return True


async def test_a_receiver_failing_for_long_is_disabled_shown_and_can_be_re_enabled(
    server: Running,
) -> None:
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        await hook(c, url)
        r.status = 500
        async with running_worker(server, app):
            first = await c.submit({"function": "work", "args": [1]})
            # The schedule: at once and four more, then the receiver is disabled.
            await wait_for(lambda: _disabled(c), timeout=15)
            second = await c.submit({"function": "work", "args": [2]})
            await wait_for(lambda: _ended(c, second.id), timeout=10)
        tries = len(r.got)
        assert tries == 5
        [receiver_] = await c.webhooks.list()
        assert not receiver_.enabled and receiver_.functions == ["work"]
        assert "failing since" in (receiver_.reason or "")
        audit = await _audit(server)
        assert "webhook.disabled" in audit
        [failed] = await c.tasks.notifications(first.id)
        assert (failed.state, failed.tries, failed.status) == ("failed", 5, 500)
        assert await server.node.notifier.send_once() == 0  # none to a disabled receiver
        assert len(r.got) == tries
        [held] = await c.tasks.notifications(second.id)
        assert (held.state, held.tries) == ("pending", 0)

        r.status = 200
        enabled = await c.webhooks.enable(receiver_.id)
        assert enabled.enabled
        await wait_for(lambda: _all_settled(c, [first.id, second.id]), timeout=10, interval=0.1)
        assert "webhook.enabled" in await _audit(server)


async def _disabled(c: AsyncClient) -> bool:
    return any(not w.enabled for w in await c.webhooks.list())


async def _ended(c: AsyncClient, task_id: str) -> bool:
    return (await c.get(task_id)).state == "succeeded"


async def _audit(server: Running) -> list[str]:
    entries = await server.node.store.list_audit(server.tenant_id, "", 100)
    return [e.action for e in entries]


async def test_webhooks_to_internal_addresses_are_refused_without_connecting(
    tmp_path: Path,
) -> None:
    """Without webhooks_allow_loopback, loopback and private receivers are refused when
    the function is set (403), by the one egress guard HTTP targets use."""
    async with running_server(tmp_path, app) as srv, AsyncClient(srv.url, srv.api_key) as c:
        for url in ("http://127.0.0.1:9/hook", "http://10.0.0.1/hook", "http://[::1]/x",
                    "http://169.254.169.254/latest", "http://localhost/hook",
                    "http://2130706433/hook"):  # fmt: skip
            with pytest.raises(sluice.RemoteError) as refused:
                await c.functions.set("work", {"webhooks": [{"url": url}]})
            assert (refused.value.status, refused.value.code) == (403, "webhook_not_allowed")
        assert (await c.functions.get("work")).webhooks == []


async def test_a_tasks_later_event_waits_while_its_earlier_one_is_retried(
    server: Running,
) -> None:
    """Order per task under retries: a task's `failed` is refused a few times while the
    task dies; its `dead` is not sent before the `failed` got through."""
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        await hook(c, url, events=["failed", "dead"])
        r.status = 503
        async with running_worker(server, app):
            task = await c.submit({"function": "work", "args": [-5]})
            await wait_for(lambda: _state_is(c, task.id, "dead"), timeout=10)
        rows = await c.tasks.notifications(task.id)
        assert [d.event for d in rows] == ["failed", "dead"]  # both written
        await wait_for(lambda: len(r.got) >= 3, timeout=10)  # `failed` tried, refused
        assert {json.loads(b)["type"] for _, b in r.got} == {"task.failed"}
        r.status = 200
        await wait_for(lambda: _all_settled(c, [task.id]), timeout=10, interval=0.1)
    sent = [json.loads(b)["type"] for _, b in r.got]
    assert sent[-1] == "task.dead" and sent.count("task.dead") == 1
    assert sent[:-1] == ["task.failed"] * (len(sent) - 1)  # every `failed` try came first


async def _state_is(c: AsyncClient, task_id: str, state: str) -> bool:
    return (await c.get(task_id)).state == state


async def test_a_disabled_receiver_is_shown_by_dashboard_and_audit_api_and_re_enabled_there(
    server: Running,
) -> None:
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        await hook(c, url)
        r.status = 500
        async with running_worker(server, app):
            task = await c.submit({"function": "work", "args": [1]})
            await wait_for(lambda: _disabled(c), timeout=15)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as ui:
            signed_in = await ui.post("/ui/signin", data={"key": server.api_key, "next": "/"})
            assert signed_in.status_code == 303, signed_in.text
            page = await ui.get("/ui/events")
            assert page.status_code == 200
            row = _row_of(page.text, url)
            assert "<strong>disabled</strong>" in row and "failing since" in row
            audit = await ui.get("/v1/audit", params={"action": "webhook.disabled"},
                                 headers={"authorization": f"Bearer {server.api_key}"})  # fmt: skip
            assert audit.status_code == 200, audit.text
            [entry] = audit.json()["entries"]
            assert (entry["action"], entry["detail"]) == ("webhook.disabled", url)

            r.status = 200
            action = re.search(r'action="(/ui/webhooks/[0-9a-f]+/enable)"', row)
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert action and csrf
            done = await ui.post(action[1], data={"csrf": csrf[1]})
            assert done.status_code in (200, 303), done.text
            again = await ui.get("/ui/events")
            assert "<strong>disabled</strong>" not in _row_of(again.text, url)
        [shown] = await c.webhooks.list()
        assert shown.enabled
        await wait_for(lambda: _all_settled(c, [task.id]), timeout=10, interval=0.1)


def _row_of(html: str, url: str) -> str:
    """The table row of the webhook receivers' table that names `url`."""
    found = re.search(r"<tr><td>" + re.escape(url) + r"</td>.*?</tr>", html, re.S)
    assert found, html[-2000:]
    return found[0]


async def test_a_receiver_that_is_not_listening_for_a_while_gets_every_event_afterwards(
    tmp_path: Path, backend: str
) -> None:
    """Down as in gone: nothing listens on its port (connections refused) while tasks
    end; it comes back on the same port and receives each event, under one id each."""
    slow_giving_up = {**FAST_NOTIFY, "webhook_retry_s": ",".join(["0.2"] * 40)}
    r = Receiver()
    web_app = web.Application()
    web_app.router.add_post("/hook", r.handle)
    held = bound()  # refused until it listens, and no one else's meanwhile
    url = f"http://127.0.0.1:{held.getsockname()[1]}/hook"
    async with (
        running_server(tmp_path, app, backend, **slow_giving_up) as server,
        AsyncClient(server.url, server.api_key) as c,
    ):
        await hook(c, url)
        async with running_worker(server, app):
            tasks = [await c.submit({"function": "work", "args": [n]}) for n in range(5)]
            ids = [t.id for t in tasks]
            await wait_for(lambda: _each_refused(c, ids, times=2), timeout=10)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, held).start()  # back, on the same port
        try:
            await wait_for(lambda: _all_settled(c, ids), timeout=15, interval=0.1)
        finally:
            await runner.cleanup()
        for task_id in ids:
            [delivery] = await c.tasks.notifications(task_id)
            assert delivery.tries >= 3 and delivery.log[0].status is None  # refused first
        assert all(w.enabled for w in await c.webhooks.list())
    by_task: dict[str, set[str]] = {}
    for headers, body in r.got:
        by_task.setdefault(json.loads(body)["data"]["task_id"], set()).add(headers["webhook-id"])
    assert sorted(by_task) == sorted(ids)
    assert all(len(found) == 1 for found in by_task.values())
    assert len(r.got) == len(ids)  # nothing arrived twice


async def _each_refused(c: AsyncClient, ids: list[str], times: int) -> bool:
    for task_id in ids:
        found = await c.tasks.notifications(task_id)
        if not found or found[0].tries < times or found[0].status is not None:
            return False
    return True


async def test_cancelling_a_running_task_notifies_cancelled_once_and_nothing_after(
    server: Running,
) -> None:
    events = ["succeeded", "failed", "dead", "cancelled", "expired"]
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        await c.functions.set("hold", {"webhooks": [{"url": url, "events": events}]})
        async with running_worker(server, app):
            task = await c.submit({"function": "hold", "args": [30]})
            await wait_for(lambda: _state_is(c, task.id, "running"), timeout=10)
            await c.tasks.cancel(task.id)
            await wait_for(lambda: r.got, timeout=10)
        # The worker has stopped: whatever its attempt answered late was refused.
        await wait_for(lambda: _all_settled(c, [task.id]), timeout=10, interval=0.1)
        [delivery] = await c.tasks.notifications(task.id)
    assert delivery.event == "cancelled"
    assert [json.loads(b)["type"] for _, b in r.got] == ["task.cancelled"]
