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
or 429 any route would, and closes). From then on (the client waits for the 101: bytes
sent behind the upgrade's head are dropped by uvicorn's parser) each request is a frame,
each answer a frame, in order:

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

from .. import eager
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
_STARTING = object()  # the serve while its first step runs in data_received
_spec = decoder(TaskSpec)


class SubmitStream(asyncio.Protocol):
    """One upgraded connection: frames in, submits in order, frames out."""

    def __init__(
        self, node: Node, tenant_id: str, admitted: Callable[[], Awaitable[bool]],
        connections: set[Any], tasks: set[Any], request_timeout_s: float,
    ) -> None:  # fmt: skip
        self._node = node
        self._tenant = tenant_id
        self._admitted = admitted  # the front door's check of the key, asked per frame
        self._connections = connections  # uvicorn's: its shutdown calls ours
        self._tasks = tasks  # uvicorn's: what a graceful shutdown's timeout cancels
        self._limit = one_bytes(node.settings)
        self._timeout = request_timeout_s
        self._buffer = bytearray()
        # Frames waiting for their turn; None stands for one too long to read.
        self._frames: collections.deque[bytes | None] = collections.deque()
        # The serve in progress: its task, or _STARTING while its first step runs.
        self._serving: asyncio.Task[None] | object | None = None
        self._paused = False  # reading, while PIPELINED frames wait for their answers
        self._drained: asyncio.Future[None] | None = None  # writing, while the peer lags
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
        self._frames.clear()  # unread frames were never acted on
        if self._sweep is not None:
            self._sweep.cancel()
        self.resume_writing()
        # A submit being written still commits (its answer has nowhere to go): the
        # client raises for it, as for an HTTP request cut off after it was sent.

    def pause_writing(self) -> None:
        # A client that sends and does not read: its answers wait here, and so (once
        # PIPELINED frames queue behind them) does reading. Memory stays bounded.
        if self._drained is None:
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

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
                # Answered in its turn, after the frames before it; what follows it is
                # not framed, so nothing more is read and the stream then closes.
                self._frames.append(None)
                self._closing = True
                buffer.clear()
                self._pause()
                break
            if len(buffer) < 4 + length:
                break
            self._frames.append(bytes(buffer[4 : 4 + length]))
            del buffer[: 4 + length]
            self._partial_since = self._heard
        if self._frames and self._serving is None:
            # Started now, in its task (eager.task), not a turn of the loop later: a
            # submit that commits inline (SQLite) is answered before this returns; one
            # that waits (PostgreSQL's commit) goes on in the task from there.
            self._serving = _STARTING
            serving = eager.task(self._serve())
            if self._serving is _STARTING:  # it waits
                self._serving = serving
                self._tasks.add(serving)
        if len(self._frames) >= PIPELINED:
            self._pause()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close once the submit in hand is answered."""
        self._closing = True
        if self._serving is None and self.transport is not None:
            self.transport.close()

    async def _serve(self) -> None:
        frames, transport = self._frames, self.transport
        assert transport is not None
        try:
            while frames and not transport.is_closing():
                body = frames.popleft()
                status, out, retry = await self._one(body)
                if self._drained is not None:
                    await self._drained
                if transport.is_closing():
                    return
                transport.write(ANSWER.pack(len(out), status, retry) + out)
                self._heard = self._partial_since = self._loop.time()
                if status in (401, 413):  # the key was revoked, or the framing is lost
                    self._closing = True
                    return
                if self._paused and len(frames) < PIPELINED // 2:
                    self._paused = False
                    transport.resume_reading()
        finally:
            if self._serving is not _STARTING:
                self._tasks.discard(cast(asyncio.Task[None], self._serving))
            self._serving = None
            if self._closing and not transport.is_closing():
                transport.close()

    async def _one(self, body: bytes | None) -> tuple[int, bytes, int]:
        """One frame's answer: (status, body, Retry-After in ms), as HTTP would answer."""
        try:
            if body is None:
                raise PayloadTooLarge(
                    f"a frame carries at most {self._limit} bytes (the single-submit body "
                    "limit); the stream is closed",
                )  # fmt: skip
            # As HTTP checks a key per request (from a cache): a revoked key's stream is
            # refused from its next frame on, and closed.
            if not await self._admitted():
                raise Unauthorized("the API key is unknown or revoked", code="invalid_key")
            spec = decode(_spec, body)
            status, outcome = await submit_one(self._node, self._tenant, spec)
            return status, _encoder.encode(outcome), NO_RETRY
        except Exception as exc:
            status, headers, out = answer(exc)
            return status, out, _retry_ms(headers.get("retry-after"))

    def _pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def _tick(self) -> float:
        return min(1.0, self._timeout / 4)

    def _look(self) -> None:
        """Close a stream whose frame stopped arriving half-way, or that has been idle
        (since its last frame or answer)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        now = self._loop.time()
        # A frame held back by our own pause is not the client's delay.
        late = now - self._partial_since > self._timeout
        stuck = bool(self._buffer) and not self._paused and late
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
