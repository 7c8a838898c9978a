"""The worker websocket: the front door identified the worker (a tenant's key, or the
pool key); the connection goes to the gateway.

Frames are bounded twice: by the server's websocket limit (`max_frame_bytes`, set on
uvicorn) and here, where a hello is held to HELLO_BYTES. A frame that does not decode,
or does not belong where it came, closes the connection with 4400 and a log line.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from ..engine.gateway import ProtocolError
from ..engine.node import Node
from ..errors import SluiceError
from ..protocol import WORKER_PATH
from .route import caller_of

log = logging.getLogger("sluice.api")

CLOSE_UNAUTHORIZED = 4401
CLOSE_PROTOCOL = 4400
CLOSE_TOO_MANY = 4429
HELLO_BYTES = 1024 * 1024


class BadFrame(SluiceError):
    """A frame that is empty or over its limit."""


@websocket(WORKER_PATH)
async def worker_socket(socket: WebSocket[Any, Any, Any]) -> None:
    node: Node = socket.app.state.node
    caller = caller_of(socket.state)
    await socket.accept()
    if caller.kind == "blocked":
        await socket.close(code=CLOSE_TOO_MANY, reason="too many unknown keys from here")
        return
    if caller.kind not in ("tenant", "pool"):
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="unknown or missing worker key")
        return
    tenant_id = caller.tenant_id
    limit = node.settings.max_workers_per_tenant
    if sum(1 for c in node.registry if c.tenant_id == tenant_id) >= limit:
        log.warning("refused a worker of %s: it already has %d connections", tenant_id, limit)
        await socket.close(code=CLOSE_TOO_MANY, reason=f"at most {limit} workers per tenant")
        return
    frames = 0
    frame_limit = min(HELLO_BYTES, node.settings.max_frame_bytes)

    async def receive() -> bytes | str:
        nonlocal frames, frame_limit
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(detail="worker disconnected", code=message.get("code", 1000))
        data = message.get("bytes") or message.get("text")
        if not isinstance(data, bytes | str) or not data:
            raise BadFrame("empty frame")
        if len(data) > frame_limit:
            raise BadFrame(f"a frame of {len(data)} bytes; the limit here is {frame_limit}")
        frames += 1
        frame_limit = node.settings.max_frame_bytes  # after the hello
        return data

    async def send(frame: bytes) -> None:
        await socket.send_bytes(frame)

    try:
        refused = await node.gateway.serve(tenant_id, receive, send)
    except WebSocketDisconnect:
        return
    except (msgspec.DecodeError, RecursionError, BadFrame, ProtocolError) as exc:
        reason = "too deep" if isinstance(exc, RecursionError) else str(exc)
        log.warning("worker of %s sent a bad frame (#%d): %s", tenant_id, frames, reason[:300])
        await socket.close(code=CLOSE_PROTOCOL, reason="bad frame")
        return
    if refused:
        await socket.close(code=CLOSE_PROTOCOL, reason="refused")
