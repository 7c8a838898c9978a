"""The notifier alone (engine/notifier.py), on a FakeClock with a real receiver on
loopback: the retry schedule of OBSERVABILITY §6.1 (stretched by at most 20 %), the
receiver disabled after the last try or at once on 410, a refused address not retried,
and a row whose webhook is gone dropped."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from aiohttp import web

from sluice.clock import FakeClock
from sluice.contract import Webhook
from sluice.engine.audit import AuditLog
from sluice.engine.notifier import TRIES_KEPT, Notifier, Tried, kept_tries
from sluice.engine.runtime import Runtime
from sluice.engine.signatures import new_secret
from sluice.model import Notice
from tests.engine.conftest import (
    FN,
    claim,
    claimed,
    make_function,
    make_task,
    make_tenant,
    with_settings,
)
from tests.engine.test_topics import topics_of
from tests.harness import free_port
from tests.store.test_contract import finish

WAITS = (5.0, 300.0, 1800.0)


class Answers:
    def __init__(self) -> None:
        self.status = 500
        self.got: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.got.append(request.headers["webhook-id"])
        return web.Response(status=self.status)


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Answers, str]]:
    answers = Answers()
    app = web.Application()
    app.router.add_post("/in", answers.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield answers, f"http://127.0.0.1:{port}/in"
    finally:
        await runner.cleanup()


@pytest.fixture
def notifying(rt: Runtime) -> Runtime:
    return with_settings(
        rt, webhooks_allow_loopback=True, webhook_retry_s=",".join(f"{w:g}" for w in WAITS)
    )


async def ended_task(rt: Runtime, url: str, webhooks: list[Webhook] | None = None) -> Any:
    """A task of a function with a webhook, finished with its notice in the outbox."""
    tenant = await make_tenant(rt)
    hooks = webhooks if webhooks is not None else [Webhook(url, secrets=[_secret()])]
    function = await make_function(rt, tenant, FN, webhooks=hooks)
    await make_task(rt, tenant, function)
    [task] = await claim(rt, tenant, "w1")
    done = _finished(tenant, task.id, (Notice("succeeded", url, FN),))
    await rt.store.finish_attempts([done], rt.clock.now())
    return tenant, task.id


def _secret() -> str:
    return new_secret()


def _finished(tenant: str, task_id: str, notify: tuple[Notice, ...]) -> Any:
    return msgspec.structs.replace(finish(claimed(tenant, task_id)), notify=notify)


@contextlib.asynccontextmanager
async def notifier_of(rt: Runtime) -> AsyncIterator[Notifier]:
    topics = topics_of(rt)
    notifier = Notifier(
        rt, topics._functions, topics._intake, topics, AuditLog(rt), random.Random(3)
    )
    try:
        yield notifier
    finally:
        await notifier.stop()


async def test_a_failing_receiver_is_tried_on_the_schedule_then_disabled(
    notifying: Runtime, clock: FakeClock
) -> None:
    rt = notifying
    async with receiver() as (answers, url):
        tenant, task_id = await ended_task(rt, url)
        async with notifier_of(rt) as notifier:
            assert await notifier.send_once() == 1  # at once
            for wait in WAITS:
                clock.advance(wait * 0.99)
                assert await notifier.send_once() == 0, "not before its wait"
                clock.advance(wait * 0.22)  # the wait, stretched by at most 20 %
                assert await notifier.send_once() == 1
        assert len(answers.got) == 4 and len(set(answers.got)) == 1  # one webhook-id
        [row] = await rt.store.list_notifications(tenant, task_id)
        assert (row.state, row.tries, row.status, row.next_at) == ("failed", 4, 500, None)
        [endpoint] = await rt.store.list_endpoints(tenant)
        assert endpoint.url == url and endpoint.disabled_at is not None
        actions = [e.action for e in await rt.store.list_audit(tenant, "", 10)]
        assert actions == ["webhook.disabled"]


async def test_a_410_disables_the_receiver_at_once_and_keeps_the_row_waiting(
    notifying: Runtime,
) -> None:
    rt = notifying
    async with receiver() as (answers, url):
        answers.status = 410
        tenant, task_id = await ended_task(rt, url)
        async with notifier_of(rt) as notifier:
            assert await notifier.send_once() == 1
            [row] = await rt.store.list_notifications(tenant, task_id)
            assert (row.state, row.status) == ("pending", 410)
            assert await notifier.send_once() == 0  # disabled: nothing goes
        assert (await rt.store.list_endpoints(tenant))[0].reason == (
            "the receiver answered 410 Gone"
        )


async def test_a_refused_address_fails_for_good_without_a_retry(rt: Runtime) -> None:
    """The operator no longer allows loopback: the stored webhook is refused before any
    connect, and not tried again."""
    async with receiver() as (answers, url):
        tenant, task_id = await ended_task(rt, url)
        async with notifier_of(rt) as notifier:
            assert await notifier.send_once() == 1
        [row] = await rt.store.list_notifications(tenant, task_id)
        assert row.state == "failed" and (row.answer or "").startswith("refused")
        assert answers.got == []


async def test_a_row_whose_webhook_is_gone_is_dropped(notifying: Runtime) -> None:
    rt = notifying
    async with receiver() as (answers, url):
        tenant, task_id = await ended_task(rt, url, webhooks=[])
        async with notifier_of(rt) as notifier:
            assert await notifier.send_once() == 1
        [row] = await rt.store.list_notifications(tenant, task_id)
        assert row.state == "dropped" and answers.got == []


async def test_every_try_is_kept_with_its_status_answer_and_duration(
    notifying: Runtime, clock: FakeClock
) -> None:
    rt = notifying
    async with receiver() as (answers, url):
        tenant, task_id = await ended_task(rt, url)
        async with notifier_of(rt) as notifier:
            assert await notifier.send_once() == 1
            clock.advance(WAITS[0] * 1.21)
            answers.status = 200
            assert await notifier.send_once() == 1
        [row] = await rt.store.list_notifications(tenant, task_id)
    assert (row.state, row.tries) == ("delivered", 2)
    tries = msgspec.json.decode(row.log or "[]")
    assert [t["status"] for t in tries] == [500, 200]
    assert tries[1]["at"] - tries[0]["at"] >= WAITS[0]
    assert all(t["duration_s"] >= 0 and "answer" in t for t in tries)


async def test_a_connection_refused_is_kept_as_an_error(notifying: Runtime) -> None:
    rt = notifying
    url = f"http://127.0.0.1:{free_port()}/nobody"  # nothing listens there
    tenant, task_id = await ended_task(rt, url)
    async with notifier_of(rt) as notifier:
        assert await notifier.send_once() == 1
    [row] = await rt.store.list_notifications(tenant, task_id)
    [tried] = msgspec.json.decode(row.log or "[]")
    assert tried["status"] is None and "connect" in tried["error"].lower()


def test_the_tries_kept_are_bounded_to_the_last_ones() -> None:
    log = None
    for n in range(TRIES_KEPT + 5):
        log = kept_tries(log, float(n), Tried(False, 500, "x" * 1000, duration_s=0.5))
    tries = msgspec.json.decode(log or "[]")
    assert len(tries) == TRIES_KEPT
    assert tries[0]["at"] == 5.0 and tries[-1]["at"] == TRIES_KEPT + 4.0  # the last ones
    assert all(len(t["answer"]) <= 200 for t in tries)


async def test_the_default_schedule_keeps_trying_a_failing_receiver_for_days(
    rt: Runtime, clock: FakeClock
) -> None:
    """The shipped `webhook_retry_s` (no override): a receiver that keeps failing is
    tried ten times over about three days before it is disabled, never before a wait."""
    rt = with_settings(rt, webhooks_allow_loopback=True)
    waits = rt.settings.webhook_retries
    async with receiver() as (answers, url):
        tenant, _ = await ended_task(rt, url)
        first = clock.now()
        async with notifier_of(rt) as notifier:
            assert await notifier.send_once() == 1
            for wait in waits:
                clock.advance(wait * 0.99)
                assert await notifier.send_once() == 0, "not before its wait"
                assert await rt.store.list_endpoints(tenant) == []  # still enabled
                clock.advance(wait * 0.22)
                assert await notifier.send_once() == 1
        assert len(answers.got) == len(waits) + 1 == 10
        assert clock.now() - first > 3 * 86400  # hours: days, in fact
        [endpoint] = await rt.store.list_endpoints(tenant)
        assert endpoint.disabled_at is not None


async def test_a_redirect_is_a_failed_try_and_is_never_followed(notifying: Runtime) -> None:
    """3xx is a failure (Standard Webhooks; DESIGN §9: no redirects): the row is tried
    again later, and the address it points to is never called."""
    calls: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        calls.append(request.path)
        raise web.HTTPTemporaryRedirect("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/in", redirect)
    app.router.add_post("/elsewhere", elsewhere)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        rt = notifying
        tenant, task_id = await ended_task(rt, f"http://127.0.0.1:{port}/in")
        async with notifier_of(rt) as notifier:
            assert await notifier.send_once() == 1
    finally:
        await runner.cleanup()
    assert calls == ["/in"]
    [row] = await rt.store.list_notifications(tenant, task_id)
    assert (row.state, row.status, row.tries) == ("pending", 307, 1)
    assert row.next_at is not None and row.next_at >= rt.clock.now() + WAITS[0]
