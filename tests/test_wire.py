"""The sync client's kept-alive connections (sluice/client/wire.py), against real HTTP
servers on loopback: one of the standard library's, which can be told to close a
connection the way a server's idle timeout does, and a Sluice node."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import sluice
from sluice.client.http import tls_context
from sluice.client.wire import Wire, proxied
from tests.harness import free_port, wait_for_sync


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the answer says otherwise

    def do_POST(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers["content-length"] or 0))
        server.seen.append((self.path, self.client_address[1], body))
        if self.path == "/chunked":  # in pieces, with a trailer
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"3\r\nabc\r\n10;x=1\r\n" + b"d" * 16 + b"\r\n0\r\nt: 1\r\n\r\n")
            return
        if self.path == "/to-the-close":  # no length: the body ends with the connection
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"all of it")
            self.close_connection = True
            return
        answer = json.dumps({"n": len(server.seen)}).encode()
        self.send_response(201)
        self.send_header("content-length", str(len(answer)))
        self.send_header("retry-after", "7")
        self.end_headers()
        self.wfile.write(answer)
        if server.close_after_answer:
            # As an idle timeout does: the connection goes, the answer said nothing.
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            server.closed += 1

    def log_message(self, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), _Handler)
        self.seen: list[tuple[str, int, bytes]] = []
        self.close_after_answer = False
        self.closed = 0


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    thread = threading.Thread(target=s.serve_forever, daemon=True)
    thread.start()
    yield s
    s.shutdown()
    s.server_close()


def _wire(url: str) -> Wire:
    return Wire(url, {"user-agent": "test"}, 5.0, tls_context())


def test_a_connection_is_kept_alive_and_the_answer_read_whole(server: _Server) -> None:
    wire = _wire(f"http://127.0.0.1:{server.server_port}")
    answers = [wire.request("POST", "/v1/tasks", b'{"i": %d}' % i, None) for i in range(3)]
    assert answers == [(201, "7", b'{"n": 1}'), (201, "7", b'{"n": 2}'), (201, "7", b'{"n": 3}')]
    assert len({port for _, port, _ in server.seen}) == 1  # one connection for all three
    assert [body for *_, body in server.seen] == [b'{"i": 0}', b'{"i": 1}', b'{"i": 2}']
    wire.close()


def test_a_connection_the_server_closed_is_replaced_and_the_request_sent_once(
    server: _Server,
) -> None:
    wire = _wire(f"http://127.0.0.1:{server.server_port}")
    server.close_after_answer = True
    for i in range(5):  # each request finds its kept connection closed by the server
        assert wire.request("POST", "/v1/tasks", b"%d" % i, None)[0] == 201
        # The close follows the answer: a request racing it would fail, as with any
        # client (only a close seen before sending can be avoided).
        wait_for_sync(lambda i=i: server.closed == i + 1, timeout=5)
    assert [body for *_, body in server.seen] == [b"0", b"1", b"2", b"3", b"4"]
    assert len({port for _, port, _ in server.seen}) == 5
    wire.close()


def test_chunked_answers_and_answers_to_the_close_are_read_whole(server: _Server) -> None:
    wire = _wire(f"http://127.0.0.1:{server.server_port}")
    assert wire.request("POST", "/chunked", b"", None) == (200, None, b"abc" + b"d" * 16)
    assert wire.request("POST", "/chunked", b"", None)[2] == b"abc" + b"d" * 16  # kept alive
    assert len({port for _, port, _ in server.seen}) == 1
    assert wire.request("POST", "/to-the-close", b"", None) == (200, None, b"all of it")
    assert wire.request("POST", "/chunked", b"", None)[0] == 200  # on a new connection
    assert len({port for _, port, _ in server.seen}) == 2
    wire.close()


def test_a_path_prefix_and_the_query_reach_the_server(server: _Server) -> None:
    wire = _wire(f"http://127.0.0.1:{server.server_port}/sluice/")
    wire.request("POST", "/v1/tasks", b"", (("state", "ready"), ("tag", "a b")))
    assert server.seen[0][0] == "/sluice/v1/tasks?state=ready&tag=a+b"
    wire.close()


def test_threads_sharing_a_client_each_get_their_own_answer(server: _Server) -> None:
    wire = _wire(f"http://127.0.0.1:{server.server_port}")

    def send(i: int) -> bytes:
        return wire.request("POST", "/v1/tasks", b"%d" % i, None)[2]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(200)))
    assert sorted(json.loads(a)["n"] for a in answers) == list(range(1, 201))
    assert sorted(int(body) for *_, body in server.seen) == list(range(200))
    assert len({port for _, port, _ in server.seen}) <= 8  # connections are reused
    wire.close()


def test_failures_raise_httpx_errors_as_the_client_always_has() -> None:
    closed = free_port()  # nothing listens there
    with pytest.raises(httpx.ConnectError, match=f"127.0.0.1:{closed}"):
        _wire(f"http://127.0.0.1:{closed}").request("GET", "/v1/health", None, None)
    with pytest.raises(ValueError, match="http:// or https://"):
        _wire("ftp://127.0.0.1")
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        wire = Wire(f"http://127.0.0.1:{listener.getsockname()[1]}", {}, 0.2, tls_context())
        with pytest.raises(httpx.ReadTimeout):
            wire.request("GET", "/v1/health", None, None)
    finally:
        listener.close()


def test_a_proxy_in_the_environment_keeps_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert not proxied("http://sluice.internal:8420")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    assert proxied("http://sluice.internal:8420")
    assert not proxied("https://sluice.internal:8420")
    monkeypatch.setenv("NO_PROXY", "sluice.internal")
    assert not proxied("http://sluice.internal:8420")
    monkeypatch.delenv("NO_PROXY")
    client = sluice.Client("http://sluice.internal:8420", "sk_x")
    assert isinstance(client._http, httpx.Client)
    client.close()
