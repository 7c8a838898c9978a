"""The worker websocket: authenticate, then hand the connection to the gateway."""

from __future__ import annotations

import logging

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from ..errors import Unauthorized
from ..protocol import WORKER_PATH
from .routes import bearer, node_of

log = logging.getLogger("sluice.api")

CLOSE_UNAUTHORIZED = 4401
CLOSE_PROTOCOL = 4400


class BadFrame(Exception):
    pass


@websocket(WORKER_PATH)
async def worker_socket(socket: WebSocket) -> None:  # type: ignore[type-arg]
    node = node_of(socket.app.state)
    try:
        tenant_id = await node.authenticate_worker(bearer(socket.headers))
    except Unauthorized:
        tenant_id = None
    await socket.accept()
    if tenant_id is None:
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="unknown or missing worker key")
        return

    async def receive() -> bytes | str:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(detail="worker disconnected", code=message.get("code", 1000))
        data = message.get("bytes") or message.get("text")
        if not isinstance(data, bytes | str) or not data:
            raise BadFrame("empty frame")
        return data

    async def send(frame: bytes) -> None:
        await socket.send_bytes(frame)

    try:
        refused = await node.gateway.serve(tenant_id, receive, send)
    except WebSocketDisconnect:
        return
    except (msgspec.DecodeError, BadFrame) as exc:
        log.warning("worker sent a bad frame: %s", exc)
        await socket.close(code=CLOSE_PROTOCOL, reason="bad frame")
        return
    if refused:
        await socket.close(code=CLOSE_PROTOCOL, reason="refused")
