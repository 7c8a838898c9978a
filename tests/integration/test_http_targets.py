"""HTTP targets (issue 7 points 1 to 3), end to end on SQLite and PostgreSQL: a real HTTP
downstream started by the test; Sluice POSTs tasks to it, signs them, maps its answers,
refuses internal addresses unless allowed, and finds its capacity with AIMD."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

import sluice
from sluice.client import AsyncClient
from tests.harness import Running, free_port, running_server, wait_for

pytestmark = pytest.mark.xdist_group("timing")  # the AIMD test's windows are timed
app = sluice.App("targets")  # no worker functions: the endpoints are the functions


class Downstream:
    """An HTTP service with a few behaviours, recording what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.capacity = 10
        self.busy = 0
        self.served: Counter[str] = Counter()  # task id -> successful answers
        self.refused = 0
        self.flaky: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        kind = request.match_info["kind"]
        self.requests.append((kind, dict(request.headers), body))
        task = json.loads(body)
        if kind == "echo":
            return web.json_response({"echo": task["args"], "attempt": task["attempt"]})
        if kind == "text":
            return web.Response(text="plain words")
        if kind == "bad":
            return web.Response(status=400, text="no such order")
        if kind == "broken":
            return web.Response(status=500, text="boom")
        if kind == "nul":  # a NUL in the body an error quotes (PostgreSQL's text refuses it)
            return web.Response(status=400, body=b"bad \x00 thing")
        if kind == "slow":  # the service's own slowness, past the 1 s target timeout
            await asyncio.sleep(5)
            return web.json_response({})
        if kind == "busy-once":
            self.flaky[task["id"]] += 1
            if self.flaky[task["id"]] == 1:
                return web.Response(status=429, headers={"Retry-After": "1"})
            return web.json_response("done")
        if kind == "limited":  # C at once; 429 above
            if self.busy >= self.capacity:
                self.refused += 1
                return web.Response(status=429)
            self.busy += 1
            try:
                await asyncio.sleep(0.02)  # the service's work: 20 ms a request
            finally:
                self.busy -= 1
            self.served[task["id"]] += 1
            return web.json_response(None)
        return web.Response(status=404)


@contextlib.asynccontextmanager
async def downstream() -> AsyncIterator[tuple[Downstream, str]]:
    service = Downstream()
    web_app = web.Application()
    web_app.router.add_post("/{kind}", service.handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend, targets_allow_loopback=True) as srv:
        yield srv


async def put_target(srv: Running, name: str, url: str, **config: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=srv.url) as http:
        return await http.put(
            f"/v1/functions/{name}",
            json={"target": {"url": url, "timeout_s": 1.0}, **config},
            headers={"authorization": f"Bearer {srv.api_key}"},
        )


async def test_a_task_is_posted_signed_and_its_answer_is_the_result(server: Running) -> None:
    async with downstream() as (service, base), AsyncClient(server.url, server.api_key) as c:
        put = await put_target(server, "echo", f"{base}/echo")
        assert put.status_code == 200, put.text
        secret = put.json()["target"]["secret"]
        assert secret.startswith("whsec_")
        task = await c.submit({"function": "echo", "args": [1, "two"], "kwargs": {}})
        done = await c.wait(task.id, timeout=10)
        assert done.state == "succeeded"
        assert done.result == {"echo": [1, "two"], "attempt": 1}

        (_, headers, body) = service.requests[0]
        sent = json.loads(body)
        assert sent["id"] == task.id and sent["function"] == "echo" and sent["attempt"] == 1
        assert sent["kwargs"] == {} and sent["deadline"] > time.time() - 5
        assert headers["webhook-id"] == task.id
        # The documented recipe (docs/http-targets.md), verbatim.
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert headers["webhook-signature"] == f"v1,{expected}"
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
        version, trace, span, flags = headers["traceparent"].split("-")
        assert (version, len(trace), len(span), flags) == ("00", 32, 16, "01")

        # Reads never show the secret; a config read back and put again keeps it.
        async with httpx.AsyncClient(base_url=server.url) as http:
            headers_ = {"authorization": f"Bearer {server.api_key}"}
            read = (await http.get("/v1/functions/echo", headers=headers_)).json()
            listed = (await http.get("/v1/functions", headers=headers_)).text
            assert read["target"]["secret"] is None and secret not in listed
            read["priority"] = 8
            for field in ("name", "target_state", "pool_state", "sources"):
                read.pop(field)
            again = await http.put("/v1/functions/echo", json=read, headers=headers_)
            assert again.status_code == 200 and again.json()["target"]["secret"] is None
        stored = (await server.node.functions.of(server.tenant_id))["echo"]
        assert stored.target is not None and stored.target.secret == secret
        assert stored.priority == 8

        await put_target(server, "text", f"{base}/text")
        text = await c.submit({"function": "text", "args": []})
        assert (await c.wait(text.id, timeout=10)).result == "plain words"


async def test_answers_map_to_success_retry_and_dead(server: Running) -> None:
    async with downstream() as (service, base), AsyncClient(server.url, server.api_key) as c:
        fast_retry = {"retry": {"max_attempts": 2, "base_s": 0.01, "min_backoff_s": 0.01}}
        for kind in ("bad", "broken", "slow", "busy-once"):
            assert (await put_target(server, kind, f"{base}/{kind}", **fast_retry)).is_success
        bad = await c.submit({"function": "bad", "args": []})
        broken = await c.submit({"function": "broken", "args": []})
        slow = await c.submit({"function": "slow", "args": []})
        busy = await c.submit({"function": "busy-once", "args": []})

        done = await c.wait(bad.id, timeout=10)
        assert done.state == "dead" and done.attempt == 1  # 4xx: not retried
        assert "HTTP 400: no such order" in (done.error or "")
        done = await c.wait(broken.id, timeout=10)
        assert done.state == "dead" and done.attempt == 2  # 5xx: retried
        done = await c.wait(slow.id, timeout=15)
        assert done.state == "dead" and done.attempt == 2  # time-out: retried
        assert "within 1 s" in (done.error or "")
        done = await c.wait(busy.id, timeout=15)
        assert done.state == "succeeded" and done.result == "done"  # 429 then fine
        assert service.flaky[busy.id] == 2


async def test_an_answer_whose_text_the_store_cannot_hold_as_is_still_ends_the_task(
    server: Running,
) -> None:
    # On PostgreSQL the NUL failed the finish's write: the task stayed running and was
    # posted again after every lease, for ever.
    async with downstream() as (service, base), AsyncClient(server.url, server.api_key) as c:
        assert (await put_target(server, "nul", f"{base}/nul")).is_success
        task = await c.submit({"function": "nul", "args": []})
        done = await c.wait(task.id, timeout=10)
    assert done.state == "dead" and done.attempt == 1
    assert "HTTP 400: bad \ufffd thing" in (done.error or "")
    assert [kind for kind, *_ in service.requests] == ["nul"]


async def test_internal_addresses_are_refused_unless_allowed(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as srv, downstream() as (_service, base):
        refused = await put_target(srv, "echo", f"{base}/echo")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "target_not_allowed"
        for url in ("ftp://example.com/x", "http://user:pw@example.com/", "not a url"):
            assert (await put_target(srv, "echo", url)).status_code == 400
        # localhost names are refused when set; other names when resolved, at every new
        # connection (tests/integration/test_egress.py).
        port = base.rsplit(":", 1)[1]
        named = await put_target(srv, "named", f"http://localhost:{port}/echo")
        assert named.status_code == 403
        assert named.json()["error"]["code"] == "target_not_allowed"


async def test_aimd_finds_the_capacity_and_follows_it(server: Running) -> None:
    total, halve_at_s = 20_000, 16.0
    async with downstream() as (service, base), AsyncClient(server.url, server.api_key) as c:
        service.capacity = 20
        retry = {"max_attempts": 3, "base_s": 0.1, "min_backoff_s": 0.1}
        put = await put_target(server, "limited", f"{base}/limited", retry=retry)
        assert put.is_success
        await c.submit_many([{"function": "limited", "args": [i]} for i in range(total)])
        conn = server.node.targets.get(server.tenant_id, "limited")
        assert conn is not None
        samples: list[tuple[float, float, int, int]] = []  # (t, L, served, refused)
        start = time.monotonic()
        while len(service.served) < total and time.monotonic() - start < 150:
            await asyncio.sleep(0.05)
            t = time.monotonic() - start
            samples.append((t, conn.aimd.limit, sum(service.served.values()), service.refused))
            if t >= halve_at_s:
                service.capacity = 10
        await wait_for(lambda: server.count("state = 'succeeded'") == total, timeout=60)
        async with httpx.AsyncClient(base_url=server.url) as http:
            # The window's timer may move L while the answer is on its way (a last window
            # closing with the backlog just gone): the API shows one of the two values.
            around = [conn.aimd.limit]
            shown = await http.get(
                "/v1/functions/limited", headers={"authorization": f"Bearer {server.api_key}"}
            )
            around.append(conn.aimd.limit)

    assert len(service.served) == total
    assert max(service.served.values()) == 1  # every task succeeded once
    first = [s for s in samples if s[0] < halve_at_s]
    converged = next(t for t, limit, *_ in first if limit >= 0.8 * 20)
    assert converged < 12, converged  # from 10, one step a window
    steady = [s for s in first if s[0] >= converged + 1]
    assert len(steady) > 20, (converged, len(first))
    mean = sum(s[1] for s in steady) / len(steady)
    assert 0.8 * 20 <= mean <= 1.2 * 20, mean
    served = steady[-1][2] - steady[0][2]
    refused = steady[-1][3] - steady[0][3]
    assert refused / (served + refused) < 0.05, (served, refused)
    later = [s for s in samples if s[0] >= halve_at_s + 8]
    assert later, "the run ended too soon after the capacity was halved"
    assert 0.7 * 10 <= sum(s[1] for s in later) / len(later) <= 1.3 * 10
    state = shown.json()["target_state"]  # the limit is visible in the API
    assert state["limit"] in around and state["in_flight"] == 0
