"""The ASGI application of one server node: the route table on the framework, behind
the front door."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Response, get

from .. import __version__
from ..dashboard.console import Console, console_handlers
from ..engine.node import Node
from ..protocol import WORKER_PATH
from .door import FrontDoor
from .errors import EXCEPTION_HANDLERS
from .limits import Limits
from .openapi import build_openapi
from .submit import BODY_OVERHEAD
from .table import ROUTES, handlers
from .workers import worker_socket


def create_app(node: Node, *, manage_node: bool = True) -> FrontDoor:
    """The ASGI app. With `manage_node`, the app starts and stops the node in its lifespan."""
    document = build_openapi(__version__, node.settings, ROUTES)

    @get("/openapi.json", include_in_schema=False)
    async def openapi() -> Response[dict[str, Any]]:
        return Response(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if manage_node:
            await node.start()
            node.reaper.hold_off()  # the listener opens now: workers reconnect from here
        try:
            yield
        finally:
            if manage_node:
                await node.stop()

    s = node.settings
    limits = Limits(node.settings)
    console = Console(node, limits)
    app = Litestar(
        route_handlers=[*handlers(ROUTES), worker_socket, openapi, *console_handlers(console)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=None,
        debug=False,
        logging_config=None,
        # Each route holds its body to its own limit (api/route.py); this is the largest.
        request_max_body_size=max(
            s.max_body_bytes, s.max_batch_bytes, s.max_payload_bytes + BODY_OVERHEAD
        ),
    )
    app.state.node = node
    app.state.limits = limits
    app.state.console = console
    door = FrontDoor(app, node, limits, ROUTES)
    door.worker_path(WORKER_PATH)
    return door
