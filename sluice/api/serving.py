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
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import Settings


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on receiving each request and a
    bound on its head."""

    max_header_bytes = 16 * 1024
    request_timeout_s = 30.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(cast(asyncio.Transport, transport))  # a stream's, always
        self._head = 0
        self._too_big = False
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._too_big and not self.transport.is_closing():
            self._disarm()
            self._refuse(431, b"the request head is too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if not self._too_big:  # never start the app for a head it would not be sent
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._too_big:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()  # the whole request is in: what follows is the response's time
        if not self._too_big:
            super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _count(self, n: int) -> None:
        self._head += n
        if self._head > self.max_header_bytes:
            self._too_big = True

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        deadline: asyncio.TimerHandle | None = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
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
