"""The submit stream: one producer's single submits on a kept-open connection, without
an HTTP request each (issue 20 point 1).

A single submit over HTTP spends more in the HTTP machinery than in the submit: about
250 µs of round trip through uvicorn for an app that does nothing, against about 50 µs
for a length-prefixed frame on a kept-open socket (`make bench-floors`). So the sync
client asks, once per connection, to switch protocols on the node's own port:

    GET /v1/tasks/stream HTTP/1.1
    authorization: Bearer <tenant key>
    connection: upgrade
    upgrade: sluice-submit/1

and the node answers `101 Switching Protocols` (or, for a key it refuses, the same 401
or 429 any route would, and closes). From then on each request is a frame, each answer a
frame, in order:

    request:  u32 length, then the body `POST /v1/tasks` takes (a task spec, JSON)
    answer:   u32 length, u16 status, u32 Retry-After in ms (0xFFFFFFFF: none),
              then the body `POST /v1/tasks` answers (the outcome, or the error)

All big-endian. A submit goes through the very path an HTTP one does (`submit_one`:
validation, quotas, backpressure, the commit), and its answer is written only after the
commit, so an answered frame is as durable as a 201. The key is checked again for each
frame, as for each HTTP request (from the same cache), so a revoked key's open stream is
refused from its next frame (401, and closed). Limits hold as on HTTP: a frame
longer than a single submit's body limit is answered 413 and the connection closed; a
frame still incomplete `request_timeout_s` after its first byte closes the connection,
and so does a connection idle for `STREAM_IDLE_S` (the client opens another).
"""

from __future__ import annotations

import asyncio
import collections
import struct
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec

from ..contract import TaskSpec
from ..engine.node import Node
from ..errors import PayloadTooLarge, Unauthorized
from .errors import answer
from .route import decode, decoder
from .submit import one_bytes, submit_one

PATH = b"/v1/tasks/stream"
UPGRADE = b"sluice-submit/1"
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: " + UPGRADE + b"\r\n\r\n"
)
LENGTH = struct.Struct(">I")
ANSWER = struct.Struct(">IHI")  # body length, status, Retry-After in ms
NO_RETRY = 0xFFFFFFFF
STREAM_IDLE_S = 60.0  # an idle stream is closed (the client lets go of its own at 45 s)
PIPELINED = 16  # frames read ahead of their answers before reading pauses
_encoder = msgspec.json.Encoder()
_spec = decoder(TaskSpec)


class SubmitStream(asyncio.Protocol):
    """One upgraded connection: frames in, submits in order, frames out."""

    def __init__(
        self, node: Node, tenant_id: str, admitted: Callable[[], Awaitable[bool]],
        connections: set[Any], request_timeout_s: float,
    ) -> None:  # fmt: skip
        self._node = node
        self._tenant = tenant_id
        self._admitted = admitted  # the front door's check of the key, asked per frame
        self._connections = connections  # uvicorn's: its shutdown calls ours
        self._limit = one_bytes(node.settings)
        self._timeout = request_timeout_s
        self._buffer = bytearray()
        self._frames: collections.deque[bytes] = collections.deque()
        self._serving: asyncio.Task[None] | None = None
        self._paused = False
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._heard = self._partial_since = self._loop.time()
        self._sweep: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.open = False  # between connection_made and connection_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's, always
        self.open = True
        self._connections.add(self)
        self._sweep = self._loop.call_later(self._tick(), self._look)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._connections.discard(self)
        self._closing = True
        if self._sweep is not None:
            self._sweep.cancel()
        # A submit being written still commits (its answer has nowhere to go): the
        # client raises for it, as for an HTTP request cut off after it was sent.

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._heard = self._loop.time()
        buffer = self._buffer
        if not buffer:
            self._partial_since = self._heard
        buffer += data
        while len(buffer) >= 4:
            (length,) = LENGTH.unpack_from(buffer)
            if length > self._limit:
                self._refuse(PayloadTooLarge(
                    f"a frame carries at most {self._limit} bytes (the single-submit body "
                    "limit); the stream is closed",
                ))  # fmt: skip
                return
            if len(buffer) < 4 + length:
                break
            self._frames.append(bytes(buffer[4 : 4 + length]))
            del buffer[: 4 + length]
            self._partial_since = self._heard
        if self._frames and self._serving is None:
            self._serving = self._loop.create_task(self._serve())
        if len(self._frames) >= PIPELINED and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close once the submit in hand is answered."""
        self._closing = True
        if self._serving is None and self.transport is not None:
            self.transport.close()

    async def _serve(self) -> None:
        frames, transport = self._frames, self.transport
        assert transport is not None
        try:
            while frames:
                body = frames.popleft()
                try:
                    # As HTTP checks a key per request (from a cache): a revoked key's
                    # stream is refused from its next frame on, and closed.
                    if not await self._admitted():
                        self._closing = True
                        raise Unauthorized("the API key is unknown or revoked", code="invalid_key")
                    spec = decode(_spec, body)
                    status, outcome = await submit_one(self._node, self._tenant, spec)
                    out, retry = _encoder.encode(outcome), NO_RETRY
                except Exception as exc:  # answered as HTTP would answer it
                    status, headers, out = answer(exc)
                    retry = _retry_ms(headers.get("retry-after"))
                if transport.is_closing():
                    return
                transport.write(ANSWER.pack(len(out), status, retry) + out)
                if self._closing and status == 401:
                    frames.clear()
                    return
                if self._paused and len(frames) < PIPELINED // 2:
                    self._paused = False
                    transport.resume_reading()
        finally:
            self._serving = None
            if self._closing and not transport.is_closing():
                transport.close()

    def _refuse(self, exc: Exception) -> None:
        """Answer a frame that cannot be read on, and close: what follows it is not framed."""
        self._closing = True
        if self.transport is None or self.transport.is_closing():
            return
        status, headers, out = answer(exc)
        retry = _retry_ms(headers.get("retry-after"))
        self.transport.write(ANSWER.pack(len(out), status, retry) + out)
        self.transport.close()

    def _tick(self) -> float:
        return min(1.0, self._timeout / 4)

    def _look(self) -> None:
        """Close a stream whose frame stopped arriving half-way, or that has been idle."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        now = self._loop.time()
        stuck = bool(self._buffer) and now - self._partial_since > self._timeout
        idle = self._serving is None and not self._buffer and now - self._heard > STREAM_IDLE_S
        if stuck or idle:
            self._closing = True
            transport.close()
            return
        self._sweep = self._loop.call_later(self._tick(), self._look)


def _retry_ms(value: str | None) -> int:
    if value is None:
        return NO_RETRY
    try:
        return min(NO_RETRY - 1, max(0, round(float(value) * 1000)))
    except ValueError:
        return NO_RETRY
