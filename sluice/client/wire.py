"""The sync client's HTTP/1.1: a small pool of kept-alive connections.

One `submit()` is a round trip, so what the client spends per request is felt in every
call. httpx spends about 0.3 ms of Python per request on this project's benchmark
machine; `http.client` much less, but it still sends a request's head and body in two
writes and parses an answer's head with the `email` package. What the client needs of
HTTP/1.1 is little: one origin, a request written in one send, a status, a few headers
and a body read back (by content-length, chunked, or to the close). So that is all this
module does, on plain sockets.

- A connection serves one request at a time; a `Client` shared by threads takes one
  from the idle list or opens another, and puts it back when the answer is read whole.
- A kept-alive connection the server has closed (an idle timeout) reads as readable
  before use: it is closed and another opened, so a request is only ever sent once.
  A failure after sending is raised, never retried here: the server may have acted.
- Failures raise httpx's exceptions (`httpx.ConnectError`, `httpx.ReadTimeout`, ...),
  as the client always has, so callers' `except httpx.HTTPError` keeps working.

Single submits (`POST /v1/tasks`) go on a submit stream instead (the server's
sluice/api/stream.py): a connection switched once from HTTP, then a length-prefixed frame
each way per submit, which spares both ends most of HTTP's cost. A server that answers
the upgrade with anything but 101 is spoken to over HTTP from then on.

Where a proxy is configured for the server's host (HTTP_PROXY and friends), `Client`
keeps httpx, which speaks to proxies; this module does not.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping

import httpx


def proxied(url: str) -> bool:
    """Whether the environment sends requests to `url` through a proxy."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


MAX_HEAD = 64 * 1024  # an answer's status line and headers; more is not a Sluice server
# The submit stream (the server's sluice/api/stream.py): single submits as frames on a
# kept-open connection, switched to from HTTP once per connection.
STREAM_PATH = "/v1/tasks/stream"
STREAM_UPGRADE = "sluice-submit/1"
_LENGTH = struct.Struct(">I")
_ANSWER = struct.Struct(">IHI")  # body length, status, Retry-After in ms
_NO_RETRY = 0xFFFFFFFF
# A stream idle this long is let go rather than used: the server closes one idle for
# 60 s (STREAM_IDLE_S), and a submit sent as it closes would be cut off unanswered.
STREAM_IDLE_S = 45.0
STREAM_RETRY_S = 10.0  # after a 429 or 503 to the upgrade, HTTP for this long


class Wire:
    """Keep-alive connections to one origin; thread-safe."""

    def __init__(
        self, url: str, headers: Mapping[str, str], timeout: float, tls: ssl.SSLContext
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a server URL is http:// or https:// and a host, not {url!r}")
        self._tls = tls if parts.scheme == "https" else None
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path.rstrip("/")  # a server behind a path on a proxy
        host = parts.netloc.rpartition("@")[2]
        fixed = {"host": host, **headers, "connection": "keep-alive"}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        upgrade = {"host": host, **headers, "connection": "upgrade", "upgrade": STREAM_UPGRADE,
                   "content-length": "0"}  # fmt: skip
        self._upgrade = (f"GET {self._prefix}{STREAM_PATH} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in upgrade.items() if k != "content-type"
        ) + "\r\n").encode("latin-1")  # fmt: skip
        self._timeout = timeout
        self._idle: list[_Conn] = []
        self._streams: list[_Conn] = []  # idle submit streams
        self.streaming = True  # until a server refuses the upgrade (an older one, a proxy)
        self._streams_after = 0.0  # monotonic time before which HTTP is used instead
        self._lock = threading.Lock()
        self._closed = False

    def request(
        self, method: str, path: str, body: bytes | None,
        params: tuple[tuple[str, str], ...] | None,
    ) -> tuple[int, str | None, bytes]:  # fmt: skip
        """(status, Retry-After, body) of one request."""
        streams = self.streaming and time.monotonic() >= self._streams_after
        if streams and path == "/v1/tasks" and method == "POST" and not params:
            answer = self._stream(body or b"")
            if answer is not None:
                return answer
        target = self._prefix + path
        if params:
            target += "?" + urllib.parse.urlencode(params)
        body = body or b""
        message = b"%s %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n%s" % (
            method.encode(),
            target.encode(),
            self._head,
            len(body),
            body,
        )
        conn = self._take()
        with self._failures():
            try:
                conn.sock.sendall(message)
                status, headers, content = conn.answer(method)
            except BaseException:
                conn.close()
                raise
        if headers.get(b"connection", b"").lower() == b"close":
            conn.close()
        else:
            self._give(conn)
        retry_after = headers.get(b"retry-after")
        return status, retry_after.decode("latin-1") if retry_after else None, content

    def _stream(self, body: bytes) -> tuple[int, str | None, bytes] | None:
        """One single submit on a submit stream; None if the server has none."""
        conn = self._take_stream()
        if conn is None:
            return None
        with self._failures():
            try:
                conn.sock.sendall(_LENGTH.pack(len(body)) + body)
                length, status, retry = _ANSWER.unpack(conn.exactly(_ANSWER.size))
                content = conn.exactly(length)
            except BaseException:
                conn.close()
                raise
        conn.used_at = time.monotonic()
        with self._lock:  # after a 401 or 413 the server closes the stream: not kept
            if not self._closed and status not in (401, 413):
                self._streams.append(conn)
                conn = None
        if conn is not None:
            conn.close()
        return status, None if retry == _NO_RETRY else str(retry / 1000), content

    def _take_stream(self) -> _Conn | None:
        """An idle stream, or a connection switched to one; None where the server
        answers the upgrade with anything but 101."""
        while True:
            with self._lock:
                conn = self._streams.pop() if self._streams else None
            if conn is None:
                break
            if time.monotonic() - conn.used_at < STREAM_IDLE_S and conn.usable():
                return conn
            conn.close()  # idle too long, or the server closed it: open another
        conn = self._open()
        with self._failures():
            try:
                conn.sock.sendall(self._upgrade)
                status, headers = conn.head()
                if status != 101:
                    conn.body("GET", status, headers)
            except BaseException:
                conn.close()
                raise
        if status == 101 and headers.get(b"upgrade", b"").lower() == STREAM_UPGRADE.encode():
            return conn
        conn.close()
        # The request goes by HTTP. So does every later one, unless the refusal was a
        # passing one (an overloaded or stopping node, an address refused for a while):
        # then streams are asked for again after STREAM_RETRY_S.
        self.streaming = status in (429, 503)
        self._streams_after = time.monotonic() + STREAM_RETRY_S
        return None

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        """Socket failures as httpx's exceptions, as the client has always raised."""
        try:
            yield
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no answer from {self._host}:{self._port}: {exc}") from exc
        except ssl.SSLError as exc:  # an OSError too: first
            raise httpx.ConnectError(str(exc)) from exc
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise httpx.RemoteProtocolError(f"the server closed the connection: {exc}") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"{self._host}:{self._port}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle + self._streams, []
            self._streams = []
        for conn in idle:
            conn.close()

    def _take(self) -> _Conn:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._open()
            if conn.usable():
                return conn
            conn.close()

    def _give(self, conn: _Conn) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def _open(self) -> _Conn:
        try:
            sock = socket.create_connection((self._host, self._port), self._timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"{self._host}:{self._port}: {exc}") from exc
        except OSError as exc:  # refused, unreachable, no such host
            raise httpx.ConnectError(f"{self._host}:{self._port}: {exc}") from exc
        # Small requests answered at once: Nagle's delay would hold a body's last segment.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            except OSError as exc:  # a certificate not verified, a handshake refused
                sock.close()
                raise httpx.ConnectError(f"{self._host}:{self._port}: {exc}") from exc
        return _Conn(sock)


class _Conn:
    """One connection and what was read past the last answer (nothing, from a server
    that waits for each request)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self.used_at = time.monotonic()  # when an answer was last read whole

    def answer(self, method: str) -> tuple[int, dict[bytes, bytes], bytes]:
        """The status, the headers (names in lower case) and the body of one answer."""
        status, headers = self.head()
        if 100 <= status < 200:  # an interim answer (none is asked for): the real one follows
            return self.answer(method)
        return status, headers, self.body(method, status, headers)

    def head(self) -> tuple[int, dict[bytes, bytes]]:
        """An answer's status and headers (names in lower case)."""
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._buf) > MAX_HEAD:
                raise httpx.RemoteProtocolError(f"an answer's head longer than {MAX_HEAD} bytes")
            self._fill()
        lines = bytes(self._buf[:end]).split(b"\r\n")
        del self._buf[: end + 4]
        version, _, rest = lines[0].partition(b" ")
        try:
            status = int(rest[:3])
        except ValueError:
            status = 0
        if not version.startswith(b"HTTP/1.") or not 100 <= status < 600:
            raise httpx.RemoteProtocolError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def body(self, method: str, status: int, headers: dict[bytes, bytes]) -> bytes:
        """The body of the answer whose head was read."""
        if method == "HEAD" or status in (204, 304):
            return b""
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            return self._chunked()
        length = headers.get(b"content-length")
        if length is None:  # to the close
            headers[b"connection"] = b"close"
            while self._fill(eof_ok=True):
                pass
            body, self._buf = bytes(self._buf), bytearray()
            return body
        return self.exactly(int(length))

    def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            while (end := self._buf.find(b"\r\n")) < 0:
                self._fill()
            size = int(bytes(self._buf[:end]).partition(b";")[0], 16)
            del self._buf[: end + 2]
            if size == 0:
                while (end := self._buf.find(b"\r\n")) != 0:  # trailers, then the end
                    if end > 0:
                        del self._buf[: end + 2]
                    else:
                        self._fill()
                del self._buf[:2]
                return bytes(out)
            out += self.exactly(size + 2)[:size]

    def exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _fill(self, eof_ok: bool = False) -> bool:
        data = self.sock.recv(65536)
        if not data:
            if eof_ok:
                return False
            ended = "before its answer was whole" if self._buf else "without an answer"
            raise httpx.RemoteProtocolError(f"the server closed the connection {ended}")
        self._buf += data
        return True

    def usable(self) -> bool:
        """An idle kept-alive connection has nothing to read; if it has, the server
        closed it (or sent what nobody asked for): either way it must not carry a
        request."""
        if self._buf:
            return False
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        self.sock.close()
