"""The sync client's HTTP/1.1: a small pool of kept-alive `http.client` connections.

One `submit()` is a round trip, so what the client spends per request is felt in every
call. httpx spends about 0.3 ms of Python per request on this project's benchmark
machine; a bare `http.client` connection about a fifth of that, which doubled single
submits from one client (bench/RESULTS.md). What the client needs of HTTP is little: one
origin, a body in, a status, one header and a body out. So this is all of it.

- A connection serves one request at a time; a `Client` shared by threads takes one
  from the idle list or opens another, and puts it back when the answer is read whole.
- A kept-alive connection the server has closed (an idle timeout) reads as readable
  before use: it is closed and another opened, so a request is only ever sent once.
  A failure after sending is raised, never retried here: the server may have acted.
- Failures raise httpx's exceptions (`httpx.ConnectError`, `httpx.ReadTimeout`, ...),
  as the client always has, so callers' `except httpx.HTTPError` keeps working.

Where a proxy is configured for the server's host (HTTP_PROXY and friends), `Client`
keeps httpx, which speaks to proxies; this module does not.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping

import httpx


def proxied(url: str) -> bool:
    """Whether the environment sends requests to `url` through a proxy."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


class Wire:
    """Keep-alive connections to one origin; thread-safe."""

    def __init__(
        self, url: str, headers: Mapping[str, str], timeout: float, tls: ssl.SSLContext
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a server URL is http:// or https:// and a host, not {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")  # a server behind a path on a proxy
        self._headers = {**headers, "connection": "keep-alive"}
        self._timeout = timeout
        self._tls = tls
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def request(
        self, method: str, path: str, body: bytes | None,
        params: tuple[tuple[str, str], ...] | None,
    ) -> tuple[int, str | None, bytes]:  # fmt: skip
        """(status, Retry-After, body) of one request."""
        target = self._prefix + path
        if params:
            target += "?" + urllib.parse.urlencode(params)
        conn = self._take()
        try:
            try:
                conn.request(method, target, body=body, headers=self._headers)
                answer = conn.getresponse()
                content = answer.read()
            except BaseException:
                conn.close()
                raise
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no answer from {self._host}:{self._port}: {exc}") from exc
        except ssl.SSLError as exc:  # an OSError too: first
            raise httpx.ConnectError(str(exc)) from exc
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            raise httpx.RemoteProtocolError(f"the server closed the connection: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise httpx.ConnectError(f"{self._host}:{self._port}: {exc}") from exc
        if answer.will_close:
            conn.close()
        else:
            self._give(conn)
        return answer.status, answer.getheader("retry-after"), content

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._open()
            if _usable(conn):
                return conn
            conn.close()

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def _open(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"{self._host}:{self._port}: {exc}") from exc
        except OSError as exc:  # refused, unreachable, a certificate not verified
            raise httpx.ConnectError(f"{self._host}:{self._port}: {exc}") from exc
        assert conn.sock is not None
        # Small requests answered at once: Nagle's delay would hold a body's last segment.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn


def _usable(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection has nothing to read; if it has, the server closed it
    (or sent what nobody asked for): either way it must not carry a request."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
