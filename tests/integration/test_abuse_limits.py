"""Abuse limits (issue 14 point 5), each against a live server, with another tenant
shown unaffected: request body, head and websocket frame sizes; streams per key;
workers per tenant; failed keys per address; clients too slow to send a request."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import websockets

import sluice
from sluice.protocol import WORKER_PATH
from tests.harness import Running, running_server, wait_for

app = sluice.App("limited")


@app.task
def echo(x: object = None) -> object:
    return x


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@contextlib.asynccontextmanager
async def neighbour(server: Running) -> AsyncIterator[httpx.AsyncClient]:
    """Another tenant, from another address, to show it is unaffected."""
    tenant = await server.node.tenants.ensure("neighbour")
    key = await server.node.tenants.create_key(tenant.id)
    await server.node.functions.register(tenant.id, [app.tasks["echo"].config])
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.3")
    async with httpx.AsyncClient(
        base_url=server.url, headers=auth(key), transport=transport
    ) as http:
        yield http


async def assert_unaffected(http: httpx.AsyncClient) -> None:
    submitted = await http.post("/v1/tasks", json={"function": "echo", "args": [1]})
    assert submitted.status_code == 201, submitted.text
    read = await http.get(f"/v1/tasks/{submitted.json()['id']}")
    assert read.status_code == 200


async def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app, max_body_bytes=64 * 1024) as server,
        neighbour(server) as other,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        body = {"function": "echo", "cron": "* * * * *", "args": ["x" * 100_000]}
        refused = await http.put("/v1/schedules/big", json=body)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"]["code"] == "payload_too_large"
        assert (await http.get("/v1/schedules")).json()["schedules"] == []
        await assert_unaffected(other)


async def raw_request(server: Running, data: bytes, read_timeout: float = 10.0) -> bytes:
    """Send bytes on a fresh connection; everything the server answers until it closes."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), read_timeout)
    finally:
        writer.close()


async def test_a_request_head_over_the_limit_is_431(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app, max_header_bytes=8 * 1024) as server,
        neighbour(server) as other,
    ):
        head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 32 * 1024 + b"\r\n\r\n"
        answer = await raw_request(server, head)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
        assert b'"code":"header_too_large"' in answer
        # A head that never ends is refused once it is too large, not at the deadline.
        endless = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 32 * 1024
        answer = await raw_request(server, endless, read_timeout=5)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
        await assert_unaffected(other)


async def test_a_client_too_slow_to_send_its_request_is_cut_off(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app, request_timeout_s=0.5) as server,
        neighbour(server) as other,
    ):
        began = time.monotonic()
        silent, half_head, half_body, _ = await asyncio.gather(
            raw_request(server, b""),  # connects and never sends a byte
            raw_request(server, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"),  # no end of head
            raw_request(
                server,
                b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                b"Authorization: Bearer " + server.api_key.encode() + b'\r\n\r\n{"fun',
            ),
            assert_unaffected(other),
        )
        assert time.monotonic() - began < 5  # closed by the server, not by our read timeout
        assert silent.startswith(b"HTTP/1.1 408")
        assert half_head.startswith(b"HTTP/1.1 408")
        assert not half_body.startswith(b"HTTP/1.1 2")  # never a task from half a body
        assert server.count() == 1  # the neighbour's task only


async def test_streams_per_key_are_bounded(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app, max_streams_per_key=2) as server,
        neighbour(server) as other,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key), timeout=30) as http,
    ):
        waiting = await http.post("/v1/tasks", json={"function": "echo", "delay": 3600})
        task_id = waiting.json()["id"]
        polls = [
            asyncio.create_task(http.get(f"/v1/tasks/{task_id}/result", params={"timeout": 20}))
            for _ in range(2)
        ]
        await wait_for(lambda: _streams(server) == 2)
        third = await http.get(f"/v1/tasks/{task_id}/result", params={"timeout": 20})
        assert third.status_code == 429, third.text
        assert third.json()["error"]["code"] == "too_many_streams"
        assert "retry-after" in third.headers
        events = await http.get(f"/v1/tasks/{task_id}/events")
        assert events.status_code == 429
        # A plain read is no stream, and the neighbour holds streams of its own.
        assert (await http.get(f"/v1/tasks/{task_id}/result", params={"timeout": 0})).is_success
        theirs = await other.post("/v1/tasks", json={"function": "echo", "delay": 3600})
        their_poll = await other.get(
            f"/v1/tasks/{theirs.json()['id']}/result", params={"timeout": 0.2}
        )
        assert their_poll.status_code == 200
        await http.post(f"/v1/tasks/{task_id}/cancel")  # ends the polls
        for poll in polls:
            assert (await poll).json()["state"] == "cancelled"
        await wait_for(lambda: _streams(server) == 0)


def _streams(server: Running) -> int:
    """Streams the server holds open, by its own count."""
    assert server.limits is not None
    return server.limits.streams.held()


async def worker_connection(server: Running, key: str, worker_id: str) -> int | None:
    """Connect a worker by hand; the close code if the server refused it, else None."""
    url = server.url.replace("http://", "ws://") + WORKER_PATH
    hello = {"t": "hello", "worker_id": worker_id, "slots": 1, "functions": [{"name": "echo"}]}
    ws = await websockets.connect(url, additional_headers=auth(key))
    try:
        await ws.send(msgspec.json.encode(hello))
        answer = msgspec.json.decode(await ws.recv())
        assert answer["t"] == "welcome"
        _OPEN.append(ws)
        return None
    except websockets.ConnectionClosed:
        return ws.close_code


_OPEN: list[websockets.ClientConnection] = []


async def test_workers_per_tenant_are_bounded_and_frames_too(tmp_path: Path) -> None:
    async with running_server(
        tmp_path, app, max_workers_per_tenant=1, max_frame_bytes=256 * 1024
    ) as server:
        other = await server.node.tenants.ensure("neighbour")
        other_key = await server.node.tenants.create_key(other.id)
        try:
            assert await worker_connection(server, server.api_key, "w1") is None
            assert await worker_connection(server, server.api_key, "w2") == 4429
            assert await worker_connection(server, other_key, "theirs") is None
            # A frame over the limit closes that connection (1009: message too big) ...
            mine = _OPEN[0]
            await mine.send(b'{"t": "hb", "pad": "' + b"x" * 300_000 + b'"}')
            await wait_for(lambda: mine.close_code is not None)
            assert mine.close_code == 1009
            # ... and the neighbour's worker still gets its tasks.
            theirs = _OPEN[1]
            await server.node.intake.submit(other.id, [_spec()])
            frame = msgspec.json.decode(await asyncio.wait_for(theirs.recv(), 10))
            assert frame["t"] == "tasks" and len(frame["tasks"]) == 1
        finally:
            for ws in _OPEN:
                await ws.close()
            _OPEN.clear()


def _spec() -> object:
    from sluice.contract import TaskSpec

    return TaskSpec(function="echo")


async def test_an_address_that_sends_unknown_keys_is_throttled(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app, max_auth_failures=5) as server,
        neighbour(server) as other,
    ):
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=server.url, transport=transport) as guesser:
            for i in range(5):
                guess = await guesser.get("/v1/functions", headers=auth(f"sk_guess{i}"))
                assert guess.status_code == 401
            for path, headers in (("/v1/functions", auth("sk_guess5")),
                                  ("/v1/functions", auth(server.api_key)),  # the right key too
                                  ("/v1/tenants", auth("sk_admin_guess"))):  # fmt: skip
                refused = await guesser.get(path, headers=headers)
                assert refused.status_code == 429, refused.text
                assert refused.json()["error"]["code"] == "too_many_failures"
                assert 1 <= int(refused.headers["retry-after"]) <= 60
            submit = await guesser.post(
                "/v1/tasks", json={"function": "echo"}, headers=auth(server.api_key)
            )
            assert submit.status_code == 429
        # Other addresses (the neighbour's, and this tenant's own from 127.0.0.1) are not.
        await assert_unaffected(other)
        async with httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http:
            assert (await http.get("/v1/functions")).status_code == 200
        assert server.count() == 1
