"""The submit stream (sluice/api/stream.py): the sync client's single submits go as
frames on an upgraded connection, answered after the commit like a 201, with the same
errors and limits as `POST /v1/tasks`; a server without streams is spoken to over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

import sluice
from sluice.api import stream
from sluice.config import Settings
from sluice.contract import SubmitOutcome
from sluice.engine.tenants import key_id
from sluice.errors import RemoteError
from sluice.store.postgres import writer
from tests.harness import Running, free_port, running_server, wait_for

app = sluice.App("streams")


@app.task
def noop(i: int = 0) -> int:
    return i


@pytest.fixture
async def server(tmp_path: Path, backend: str) -> AsyncIterator[Running]:
    async with running_server(tmp_path, app, backend, request_timeout_s=1.0) as srv:
        yield srv


def live_streams(server: Running) -> list[stream.SubmitStream]:
    """The node's submit streams whose connection is open (not yet lost: a transport
    being closed may not have sent its FIN yet)."""
    assert server.asgi is not None
    return [s for s in server.asgi.streams if s.open]


def upgrade(url: str, key: str) -> tuple[socket.socket, bytes]:
    """A raw connection asking for a submit stream; the socket and the answer's head."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        b"GET /v1/tasks/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer %s\r\n"
        b"connection: upgrade\r\nupgrade: sluice-submit/1\r\n\r\n" % key.encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            break
        head += chunk
    return sock, head


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def read_answer(sock: socket.socket) -> tuple[int, int, dict[str, Any]]:
    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError(f"closed after {len(out)} of {n} bytes")
            out += chunk
        return out

    length, status, retry = struct.unpack(">IHI", exactly(10))
    return status, retry, json.loads(exactly(length))


def closed(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


async def test_single_submits_go_on_one_stream_and_are_durable_when_answered(
    server: Running,
) -> None:
    def submit_many() -> list[SubmitOutcome]:
        with sluice.Client(server.url, server.api_key) as client:
            outcomes = [client.submit({"function": "noop", "args": [i]}) for i in range(50)]
            assert client._http.streaming  # type: ignore[union-attr]
            assert len(client._http._streams) == 1  # type: ignore[union-attr]  # one, reused
            return outcomes

    outcomes = await asyncio.to_thread(submit_many)
    assert [o.state for o in outcomes] == ["ready"] * 50
    assert len({o.id for o in outcomes}) == 50
    # Answered means committed: every one is in the store, as submitted.
    ids = "', '".join(o.id for o in outcomes)
    assert server.count(f"id IN ('{ids}')") == 50
    # The HTTP API goes on answering every other call (and reads what the stream wrote).
    async with sluice.AsyncClient(server.url, server.api_key) as client:
        task = await client.get(outcomes[7].id)
        assert task.function == "noop" and task.args == [7]


async def test_a_stream_answers_errors_as_http_does_and_keeps_going(server: Running) -> None:
    sock, head = await asyncio.to_thread(upgrade, server.url, server.api_key)
    with sock:
        assert head.startswith(b"HTTP/1.1 101 ") and b"upgrade: sluice-submit/1" in head
        headers = {"authorization": f"Bearer {server.api_key}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            for bad in (b'{"args": [1]}', b"{not json", b'{"function": "noop", "priority": 11}'):
                sock.sendall(frame(bad))
                status, retry, body = await asyncio.to_thread(read_answer, sock)
                same = await http.post("/v1/tasks", content=bad)
                assert (status, body) == (same.status_code, same.json())
                assert status == 400 and retry == stream.NO_RETRY and body["error"]["message"]
        # Frames sent together, one split across writes: answered in order, each once.
        both = frame(b'{"function": "noop", "args": [1]}') + frame(b'{"function": "noop"}')
        sock.sendall(both[:7])
        await asyncio.sleep(0.05)  # the rest comes in a later segment
        sock.sendall(both[7:])
        first = await asyncio.to_thread(read_answer, sock)
        second = await asyncio.to_thread(read_answer, sock)
        assert (first[0], second[0]) == (201, 201)
        assert first[2]["id"] < second[2]["id"]  # time-ordered ids: in the order sent
        # Refusing new work (a node stopping): 503 with Retry-After, as HTTP answers.
        server.node.accepting = False
        try:
            sock.sendall(frame(b'{"function": "noop"}'))
            status, retry, body = await asyncio.to_thread(read_answer, sock)
        finally:
            server.node.accepting = True
        assert status == 503 and retry != stream.NO_RETRY and body["error"]["code"]
    assert server.count() == 2


async def test_an_oversized_frame_is_refused_and_the_stream_closed(server: Running) -> None:
    sock, head = await asyncio.to_thread(upgrade, server.url, server.api_key)
    with sock:
        assert head.startswith(b"HTTP/1.1 101 ")
        # A good frame, then one announcing 2 GiB (nothing follows), in one write: the
        # good one is answered first, then the 413, in order; then the stream closes.
        sock.sendall(frame(b'{"function": "noop"}') + struct.pack(">I", 2**31))
        status, _, body = await asyncio.to_thread(read_answer, sock)
        assert status == 201, body
        status, _, body = await asyncio.to_thread(read_answer, sock)
        assert status == 413 and "frame" in body["error"]["message"]
        assert await asyncio.to_thread(closed, sock)
    assert server.count() == 1


async def test_a_frame_stuck_half_way_is_closed_after_the_request_timeout(
    server: Running,
) -> None:
    sock, head = await asyncio.to_thread(upgrade, server.url, server.api_key)
    with sock:
        assert head.startswith(b"HTTP/1.1 101 ")
        sock.sendall(frame(b'{"function": "noop"}')[:9])  # and never the rest
        began = time.monotonic()
        assert await asyncio.to_thread(closed, sock)
        # request_timeout_s is 1 s here; the sweep looks every quarter of it.
        assert 0.9 < time.monotonic() - began < 5
    assert server.count() == 0


async def test_a_key_the_route_refuses_gets_its_answer_and_no_stream(server: Running) -> None:
    sock, head = await asyncio.to_thread(upgrade, server.url, "sk_nobody")
    with sock:
        assert head.startswith(b"HTTP/1.1 401 "), head
        assert b"connection: close" in head
        assert await asyncio.to_thread(closed, sock)
    assert not live_streams(server)
    # The client, given a bad key, falls back to HTTP and raises the route's own error.

    def bad_submit() -> RemoteError:
        with (
            sluice.Client(server.url, "sk_nobody") as client,
            pytest.raises(RemoteError) as caught,
        ):
            client.submit({"function": "noop"})
        return caught.value

    error = await asyncio.to_thread(bad_submit)
    assert error.status == 401 and error.code == "invalid_key"


async def test_a_stream_the_server_closed_while_idle_is_replaced(server: Running) -> None:
    with sluice.Client(server.url, server.api_key) as client:
        first = await asyncio.to_thread(client.submit, {"function": "noop", "args": [1]})
        for conn in live_streams(server):  # the server closes idle streams (STREAM_IDLE_S)
            assert conn.transport is not None
            conn.transport.close()
        await wait_for(lambda: not live_streams(server))
        second = await asyncio.to_thread(client.submit, {"function": "noop", "args": [2]})
    assert first.id != second.id
    assert server.count() == 2  # each once: the closed stream carried nothing


async def test_a_server_without_streams_is_spoken_to_over_http() -> None:
    """A server that answers the upgrade with anything but 101 (an older Sluice, a proxy
    that strips upgrades) gets single submits over HTTP, and no more upgrade tries."""
    seen: list[tuple[str, str]] = []

    async def old_server(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        seen.append((scope["method"], scope["path"]))
        found = scope["method"] == "POST" and scope["path"] == "/v1/tasks"
        body = (
            b'{"id": "01", "created": true, "state": "ready", "run_at": 0}'
            if found
            else b'{"error": {"status": 404, "code": "not_found", "message": "no"}}'
        )
        head = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 201 if found else 404,
                    "headers": head})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    port = free_port()
    config = uvicorn.Config(old_server, host="127.0.0.1", port=port, lifespan="off",
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started or serving.done())
    try:

        def two_submits() -> list[str]:
            with sluice.Client(f"http://127.0.0.1:{port}", "sk_x") as client:
                out = [client.submit({"function": "noop"}).state for _ in range(2)]
                assert not client._http.streaming  # type: ignore[union-attr]
                return out

        assert await asyncio.to_thread(two_submits) == ["ready", "ready"]
    finally:
        server.should_exit = True
        await serving
    assert seen == [("GET", "/v1/tasks/stream"), ("POST", "/v1/tasks"), ("POST", "/v1/tasks")]


def test_streams_are_offered_by_a_nodes_protocol_only() -> None:
    from sluice.api.serving import server_config

    async def plain(scope: Any, receive: Any, send: Any) -> None:  # not a front door
        raise AssertionError

    protocol = server_config(plain, Settings.from_env({})).http
    assert getattr(protocol, "streams", "missing") is None


async def test_the_client_lets_go_of_a_stream_idle_near_the_servers_limit(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rather than send on a stream the server may be closing (idle a minute), the
    client opens another past STREAM_IDLE_S: no submit is cut off by that race."""
    from sluice.client import wire

    def three_submits() -> list[int]:
        with sluice.Client(server.url, server.api_key) as client:
            used = []
            for i in range(3):
                client.submit({"function": "noop", "args": [i]})
                (conn,) = client._http._streams  # type: ignore[union-attr]
                used.append(conn.sock.getsockname()[1])  # a new connection, a new port
            return used

    monkeypatch.setattr(wire, "STREAM_IDLE_S", 0.0)
    assert len(set(await asyncio.to_thread(three_submits))) == 3
    monkeypatch.setattr(wire, "STREAM_IDLE_S", 45.0)
    assert len(set(await asyncio.to_thread(three_submits))) == 1
    assert server.count() == 6


async def test_a_revoked_key_is_refused_on_its_open_stream(server: Running) -> None:
    """As over HTTP, a key is checked per submit: revoking it stops its open stream at
    the next frame (401 invalid_key), and the stream is closed."""
    key = await server.node.tenants.create_key(server.tenant_id)
    sock, head = await asyncio.to_thread(upgrade, server.url, key)
    with sock:
        assert head.startswith(b"HTTP/1.1 101 ")
        sock.sendall(frame(b'{"function": "noop"}'))
        assert (await asyncio.to_thread(read_answer, sock))[0] == 201
        await server.node.tenants.revoke_key(server.tenant_id, key_id(key))
        sock.sendall(frame(b'{"function": "noop"}'))
        status, _, body = await asyncio.to_thread(read_answer, sock)
        assert (status, body["error"]["code"]) == (401, "invalid_key")
        assert await asyncio.to_thread(closed, sock)
    assert server.count() == 1


async def test_a_server_stops_at_once_with_an_idle_stream_open(
    tmp_path: Path, backend: str
) -> None:
    """uvicorn's shutdown waits for its connections: an idle stream is one of them and
    closes when asked, so a stop is not held up by a producer's open stream."""
    async with running_server(tmp_path, app, backend) as srv:
        sock, head = await asyncio.to_thread(upgrade, srv.url, srv.api_key)
        assert head.startswith(b"HTTP/1.1 101 ")
        began = time.monotonic()
    with sock:
        assert time.monotonic() - began < 5
        assert await asyncio.to_thread(closed, sock)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_frame_whose_insert_must_connect_again_is_committed(server: Running) -> None:
    """A frame's submit starts as it is read, in its task (eager.task). On PostgreSQL a
    lone submit inserts on a kept connection; with none left it connects, and asyncpg's
    connect enters `asyncio.timeout`, which needs the current task: a submit started
    with none answered 500 from then on."""
    with sluice.Client(server.url, server.api_key) as client:
        first = await asyncio.to_thread(client.submit, {"function": "noop", "args": [1]})

        async def inserts() -> list[int]:
            conn = await asyncpg.connect(server.database)
            try:
                rows = await conn.fetch(
                    "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = $1",
                    writer.APPLICATION_NAME,
                )  # fmt: skip
                return [r[1] for r in rows]
            finally:
                await conn.close()

        assert await inserts()  # the kept connection, ended from outside
        await wait_for(lambda: all(c.is_closed() for c, _ in kept(server)))
        outcomes = [
            await asyncio.to_thread(client.submit, {"function": "noop", "args": [i]})
            for i in range(2, 5)
        ]
    assert [o.state for o in [first, *outcomes]] == ["ready"] * 4
    assert server.count() == 4


def kept(server: Running) -> list[tuple[Any, float]]:
    """The PostgreSQL store's idle insert connections."""
    return list(server.node.rt.store._inserts._idle)  # type: ignore[attr-defined]
