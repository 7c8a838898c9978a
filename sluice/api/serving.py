"""How a node serves HTTP: the uvicorn settings every server process uses (`sluice
server`, `sluice dev`, the tests), and the connection guard they run with.

uvicorn bounds a websocket frame (`ws_max_size`) but neither the size of a request head
nor how long a client may take to send one: a client that trickles a header a byte at a
time, or never sends a request at all, holds its connection for ever. The guard closes
a connection whose request (head and body) has not arrived `request_timeout_s` after it
began, and answers 431 to a head over `max_header_bytes`. Responses take as long as they
take (long-polls and event streams are responses).
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import Awaitable, Callable
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import Settings
from ..errors import InvalidRequest, Unavailable
from . import stream
from .errors import answer


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on receiving each request and a
    bound on its head.

    It costs a request a few attribute writes: no timer per request (one sweep a server
    closes the late ones), no call per header (a complete head is measured once, a head
    still arriving by the bytes that brought it)."""

    max_header_bytes = 16 * 1024
    request_timeout_s = 30.0
    # Per server (each `server_config` makes a subclass; __init_subclass__ gives it its
    # own): the connections receiving a request, with when each began.
    _receiving: dict[GuardedHttpProtocol, float] = {}
    _sweep: asyncio.TimerHandle | None = None
    # The node's submit streams (api/stream.py): the front door's `open_stream`, which
    # admits a key as `POST /v1/tasks` does. None: no streams (the upgrade is a 404).
    streams: Callable[..., Awaitable[asyncio.Protocol]] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._receiving, cls._sweep = {}, None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream's transport, always; its writes of one response leave in one segment.
        coalescing = _Coalescing(cast(asyncio.Transport, transport))
        super().connection_made(cast(asyncio.Transport, coalescing))
        self._head = 0  # bytes of a head still arriving
        self._in_head = True
        self._messages = self._completed = 0  # requests begun, received on this connection
        self._too_big = False
        self._begin()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._receiving.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        messages, idle = self._messages, self._completed == self._messages
        super().data_received(data)
        # Bytes of a head that has not ended yet: all of them, unless they also ended an
        # earlier request (pipelined: not counted, it is one read).
        begun = self._messages - messages
        if self._in_head and not self._too_big and (begun == 0 or (begun == 1 and idle)):
            self._head += len(data)
            self._too_big = self._head > self.max_header_bytes
        if self._too_big and not self.transport.is_closing():
            self._receiving.pop(self, None)
            self._refuse(431, b"the request head is too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head, self._in_head = 0, True
        self._messages += 1
        self._begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_header_bytes:
            self._too_big = True  # never start the app for a head it would not be sent
        else:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._too_big:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._completed += 1
        self._receiving.pop(self, None)  # the request is in: the rest is the response's time
        if not self._too_big:
            super().on_message_complete()

    def _should_upgrade(self) -> bool:
        if self._get_upgrade() == stream.UPGRADE:
            return self.streams is not None and self.url == stream.PATH
        return super()._should_upgrade()

    def handle_websocket_upgrade(self) -> None:
        self._receiving.pop(self, None)
        if isinstance(self.transport, _Coalescing):  # frames go out as they are sent
            self.transport = self.transport.unwrap()
        if self._get_upgrade() == stream.UPGRADE:
            self._open_stream()
            return
        super().handle_websocket_upgrade()

    _switching = False  # a submit stream's key is being checked
    _stopping = False  # uvicorn's shutdown came meanwhile

    def shutdown(self) -> None:
        if self._switching:  # answered 503 once the check is done (_switch)
            self._stopping = True
            return
        super().shutdown()

    def _open_stream(self) -> None:
        """Admit the key, answer 101 and hand the connection to a SubmitStream (or answer
        the refusal as any route would, and close). The connection stays counted as
        uvicorn's until it is handed over, so a shutdown meanwhile is seen."""
        self._unset_keepalive_if_required()
        self.transport.pause_reading()
        if not (self.cycle is None or self.cycle.response_complete) or self.pipeline:
            # An upgrade behind a request not yet answered: its answer would land in
            # the stream. Only a client that does not wait for answers sends one.
            refused = InvalidRequest("ask for a submit stream after every answer is in")
            self._answer(self.transport, refused)
            return
        self._switching = True
        self.loop.create_task(self._switch(self.transport, list(self.headers)))

    async def _switch(self, transport: asyncio.Transport, headers: list[Any]) -> None:
        assert self.streams is not None
        try:
            protocol = await self.streams(
                headers, self.client, self.connections, self.server_state.tasks,
                self.request_timeout_s,
            )  # fmt: skip
            if self._stopping:
                raise Unavailable("the server is stopping", retry_after_s=1)
        except Exception as exc:
            self._switching = False
            self._answer(transport, exc)
            return
        self._switching = False
        self.connections.discard(self)  # the stream counts itself in, for shutdown
        if transport.is_closing():
            return
        transport.write(stream.SWITCHED)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        transport.resume_reading()

    def _answer(self, transport: asyncio.Transport, exc: BaseException) -> None:
        """A refused upgrade's answer, as any route would give it; then the close."""
        if transport.is_closing():
            return
        status, extra, body = answer(exc)
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (
            status, http.HTTPStatus(status).phrase.encode(),
        )  # fmt: skip
        for name, value in extra.items():
            head += b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
        head += b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        transport.write(head + body)
        transport.close()

    def on_response_complete(self) -> None:
        if isinstance(self.transport, _Coalescing):
            self.transport.flush()  # the answer goes now, not at the loop's next turn
        super().on_response_complete()

    def _begin(self) -> None:
        cls = type(self)
        cls._receiving[self] = self.loop.time()
        if cls._sweep is None:
            cls._sweep = self.loop.call_later(cls._tick(), cls._close_late, self.loop)

    @classmethod
    def _tick(cls) -> float:
        return min(1.0, cls.request_timeout_s / 4)  # closed at most a tick past the deadline

    @classmethod
    def _close_late(cls, loop: asyncio.AbstractEventLoop) -> None:
        cutoff = loop.time() - cls.request_timeout_s
        for late in [c for c, began in cls._receiving.items() if began <= cutoff]:
            del cls._receiving[late]
            late._too_slow()
        cls._sweep = loop.call_later(cls._tick(), cls._close_late, loop) if cls._receiving else None

    def _too_slow(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(408, b"the request did not arrive in time")
        else:  # the app started on the head; the body is late: cut it off
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            self.transport.close()

    def _refuse(self, status: int, message: bytes) -> None:
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        code = {408: b"request_timeout", 431: b"header_too_large"}[status]
        body = b'{"error":{"status":%d,"code":"%s","message":"%s"}}' % (status, code, message)
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n" % (status, reason)
        head += b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        self.transport.write(head + body)
        self.transport.close()


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """The uvicorn config of a node: its limits from the settings, the guard above."""

    class Protocol(GuardedHttpProtocol):
        max_header_bytes = settings.max_header_bytes
        request_timeout_s = settings.request_timeout_s
        streams = getattr(app, "open_stream", None)  # a node's front door has them

    options.setdefault("host", settings.host)
    options.setdefault("port", settings.port)
    return uvicorn.Config(
        app,
        http=Protocol,
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=None,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        log_level="warning",
        log_config=None,  # uvicorn's records go through the process's handler (sluice/logs.py)
        timeout_keep_alive=5,
        **options,
    )


class _Coalescing:
    """A transport whose writes within one turn of the event loop go out as one.

    uvicorn writes a response's head and its body separately: two send() calls, two TCP
    segments, and the client woken twice for one answer. Held until the response
    completes (or the loop's next turn, for a streamed one), they leave in one send:
    about a fifth of a small request's server time, measured on this project's
    benchmark machine (bench/RESULTS.md)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, []
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._held))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def unwrap(self) -> asyncio.Transport:
        self.flush()
        return self._transport
