"""Webhooks given with a task at submit, and a shared pool's function's webhooks (issue
19, what was left), end to end on SQLite and PostgreSQL with a real receiver on
loopback: a task's own webhook is signed with the tenant's signing secret (made and shown
once by `POST /v1/webhooks/secret`, rotated with two valid at once) and fires from the
outbox like a function's, on a finish and on a cancel; a task without one sends nothing;
bad webhooks are refused with a code; every try of a delivery is listed (and its
receiver, while retried); a webhook set on a shared pool's function fires for a
tenant's task that the pool ran."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import sluice
from sluice.client import AsyncClient, Client
from sluice.engine.signatures import new_secret
from sluice.model import SHARED
from tests.harness import Running, running_server, running_worker, wait_for
from tests.integration.test_webhooks import FAST_NOTIFY, app, receiver

POOL_KEY = "pool-secret-for-tests"


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend, pool_key=POOL_KEY, **FAST_NOTIFY) as srv:
        yield srv


def _hook(url: str, *events: str) -> dict[str, Any]:
    return {"url": url, "events": list(events)} if events else {"url": url}


async def test_a_tasks_own_webhook_is_delivered_signed_with_the_tenants_secret(
    server: Running,
) -> None:
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        assert (await c.webhooks.secret()).keys == 0
        made = await c.webhooks.rotate_secret()
        secret = made.secret or ""
        assert made.keys == 1 and secret.startswith("whsec_")
        shown = await c.webhooks.secret()
        assert (shown.keys, shown.secret) == (1, None)  # never shown again
        async with running_worker(server, app):
            plain = await c.submit({"function": "work", "args": [1]})
            own = await c.submit({"function": "work", "args": [21], "webhooks": [_hook(url)]})
            await wait_for(lambda: r.got, timeout=10)
            await wait_for(lambda: _succeeded(c, plain.id), timeout=10)
        headers, body = r.got[0]
        sent = sluice.verify_webhook(secret, headers, body)
        assert sent["type"] == "task.succeeded"
        assert (sent["data"]["task_id"], sent["data"]["result"]) == (own.id, 42)
        assert await c.tasks.notifications(plain.id) == []  # a task without one: nothing
        shown_task = await c.get(own.id)
        assert [(w.url, w.events) for w in shown_task.webhooks] == [
            (url, ["succeeded", "dead", "cancelled", "expired"])
        ]
        assert (await c.get(plain.id)).webhooks == []
        [delivery] = await wait_for(lambda: _settled(c, own.id), timeout=10)
        assert (delivery.url, delivery.state, delivery.status) == (url, "delivered", 200)
        assert len(r.got) == 1


async def test_the_sync_client_and_a_batch_carry_webhooks_and_a_rotation_signs_with_both(
    server: Running,
) -> None:
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        old = (await c.webhooks.rotate_secret()).secret or ""
        new = (await c.webhooks.rotate_secret()).secret or ""
        assert (await c.webhooks.secret()).keys == 2

        def submit() -> list[str]:
            with Client(server.url, server.api_key) as sync:
                one = sync.submit({"function": "work", "args": [1], "webhooks": [_hook(url)]})
                many = sync.submit_many(
                    [{"function": "work", "args": [n], "webhooks": [_hook(url)]} for n in (2, 3)]
                )
                return [one.id, *(o.id for o in many)]

        ids = await asyncio.to_thread(submit)
        async with running_worker(server, app):
            await wait_for(lambda: len(r.got) >= 3, timeout=10)
        got = {json.loads(b)["data"]["task_id"] for _, b in r.got}
        assert got == set(ids)
        for headers, body in r.got:
            assert len(headers["webhook-signature"].split()) == 2
            assert sluice.verify_webhook(old, headers, body)["type"] == "task.succeeded"
            assert sluice.verify_webhook(new, headers, body)["type"] == "task.succeeded"
        third = (await c.webhooks.rotate_secret()).secret or ""
        assert (await c.webhooks.secret()).keys == 2  # the oldest is dropped
        with pytest.raises(sluice.InvalidSignature):
            sluice.verify_webhook(third, *r.got[0])


async def test_a_cancelled_task_notifies_its_own_webhook(server: Running) -> None:
    """No function has receivers here: the cancel finds the task's own by its column."""
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        await c.webhooks.rotate_secret()
        waiting = await c.submit(
            {"function": "work", "args": [1], "delay": 300,
             "webhooks": [_hook(url, "cancelled", "succeeded")]}
        )  # fmt: skip
        await c.tasks.cancel(waiting.id)
        await wait_for(lambda: r.got, timeout=10)
    sent = json.loads(r.got[0][1])
    assert (sent["type"], sent["data"]["task_id"]) == ("task.cancelled", waiting.id)


async def test_bad_task_webhooks_are_refused_with_a_code(server: Running) -> None:
    async with receiver() as (_r, url), AsyncClient(server.url, server.api_key) as c:
        spec: dict[str, Any] = {"function": "work", "args": [1], "webhooks": [_hook(url)]}
        with pytest.raises(sluice.RemoteError) as refused:
            await c.submit(spec)  # no signing secret yet
        assert (refused.value.status, refused.value.code) == (409, "no_webhook_secret")
        await c.webhooks.rotate_secret()
        bad: list[tuple[list[Any], int, str]] = [
            ([_hook(f"{url}/{n}") for n in range(4)], 400, "invalid_request"),  # > 3
            ([_hook(url, "finished")], 400, "invalid_request"),  # no such event
            ([{"url": url, "secret": "x"}], 400, "invalid_request"),  # no such field
            ([_hook("ftp://example.com/x")], 400, "invalid_request"),
            ([_hook(url), _hook(url, "dead")], 422, "duplicate_webhook"),
        ]
        for webhooks, status, code in bad:
            with pytest.raises(sluice.RemoteError) as refused:
                await c.submit({**spec, "webhooks": webhooks})
            assert (refused.value.status, refused.value.code) == (status, code), webhooks
        with pytest.raises(sluice.RemoteError) as refused:
            await c.submit_many([{"function": "work"}, {**spec, "webhooks": [{"url": 1}]}])
        assert refused.value.status == 400 and "tasks[1]" in (refused.value.field or "")


async def test_internal_addresses_are_refused_by_the_egress_rules(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as srv, AsyncClient(srv.url, srv.api_key) as c:
        await c.webhooks.rotate_secret()
        for url in ("http://127.0.0.1:9/hook", "http://10.0.0.1/hook",
                    "http://169.254.169.254/latest"):  # fmt: skip
            with pytest.raises(sluice.RemoteError) as refused:
                await c.submit({"function": "work", "webhooks": [_hook(url)]})
            assert (refused.value.status, refused.value.code) == (403, "webhook_not_allowed")
            assert refused.value.field == "webhooks[0].url"
        assert [t async for t in c.tasks.list()] == []


async def test_every_try_of_a_delivery_is_listed_and_its_receiver_while_retried(
    server: Running,
) -> None:
    async with receiver() as (r, url), AsyncClient(server.url, server.api_key) as c:
        await c.webhooks.rotate_secret()
        r.status = 503
        task = await c.submit(
            {"function": "work", "args": [-1], "max_attempts": 1,
             "webhooks": [_hook(url, "dead")]}
        )  # fmt: skip
        async with running_worker(server, app):
            await wait_for(lambda: len(r.got) >= 2, timeout=10)
            # Listed while retried (no config names it), and `enable` finds what is
            # listed: not disabled, it stays as it is.
            [listed] = await c.webhooks.list()
            assert (listed.url, listed.functions, listed.enabled) == (url, [], True)
            assert (await c.webhooks.enable(listed.id)).enabled
            r.status = 200
            [delivery] = await wait_for(lambda: _settled(c, task.id), timeout=10)
    assert delivery.state == "delivered" and delivery.tries == len(delivery.log) >= 3
    assert [t.status for t in delivery.log][-1] == 200
    assert {t.status for t in delivery.log[:-1]} == {503}
    assert [t.answer for t in delivery.log][:2] == ["down", "down"]
    assert all(t.duration_s >= 0 and t.at > 0 for t in delivery.log)
    assert [t.at for t in delivery.log] == sorted(t.at for t in delivery.log)


async def test_a_shared_pools_function_webhook_fires_for_a_tenants_task(
    server: Running,
) -> None:
    """The operator sets a webhook on the function a shared pool serves; a tenant with
    no function of its own by that name submits; the pool's worker runs it."""
    node = server.node
    await node.functions.register(SHARED, [t.config for t in app.tasks.values()])
    secret = new_secret()
    async with receiver() as (r, url):
        await node.functions.set(
            SHARED, "work", {"webhooks": [{"url": url, "events": ["succeeded"],
                                           "secrets": [secret]}]}
        )  # fmt: skip
        tenant = await node.tenants.ensure("acme")
        key = await node.tenants.create_key(tenant.id)
        async with AsyncClient(server.url, key) as c:
            async with running_worker(server, app, api_key=POOL_KEY):
                task = await c.submit({"function": "work", "args": [4]})
                await wait_for(lambda: r.got, timeout=10)
            headers, body = r.got[0]
            sent = sluice.verify_webhook(secret, headers, body)
            assert (sent["data"]["task_id"], sent["data"]["result"]) == (task.id, 8)
            [delivery] = await wait_for(lambda: _settled(c, task.id), timeout=10)
            assert delivery.state == "delivered"
            [shown] = await c.webhooks.list()
            assert (shown.url, shown.functions, shown.enabled) == (url, ["work"], True)


async def _settled(c: AsyncClient, task_id: str) -> list[Any]:
    found = await c.tasks.notifications(task_id)
    return found if found and all(d.state != "pending" for d in found) else []


async def _succeeded(c: AsyncClient, task_id: str) -> bool:
    return (await c.get(task_id)).state == "succeeded"
