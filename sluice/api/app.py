"""The Litestar application of one server node."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from litestar import Litestar, Response, get

from ..engine.node import Node
from .audit import AUDIT_ROUTES
from .errors import EXCEPTION_HANDLERS
from .events import EVENT_ROUTES
from .limits import Limits
from .metrics import metrics
from .openapi import build_openapi
from .pauses import PAUSE_ROUTES
from .quotas import QUOTA_ROUTES
from .routes import ROUTES
from .schedules import SCHEDULE_ROUTES
from .submit import SUBMIT_ROUTES, SubmitRoutes
from .workers import worker_socket

log = logging.getLogger("sluice.api")


def _version() -> str:
    try:
        return version("sluice")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(node: Node, *, manage_node: bool = True) -> SubmitRoutes:
    """The ASGI app. With `manage_node`, the app starts and stops the node in its lifespan."""
    document = build_openapi(_version(), node.settings)

    @get("/openapi.json", include_in_schema=False)
    async def openapi() -> Response[dict[str, Any]]:
        return Response(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if manage_node:
            await node.start()
        try:
            yield
        finally:
            if manage_node:
                await node.stop()

    app = Litestar(
        route_handlers=[
            *ROUTES,
            *SUBMIT_ROUTES,
            *SCHEDULE_ROUTES,
            *PAUSE_ROUTES,
            *EVENT_ROUTES,
            *QUOTA_ROUTES,
            *AUDIT_ROUTES,
            worker_socket,
            openapi,
            metrics,
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=None,
        debug=False,
        logging_config=None,
        request_max_body_size=node.settings.max_body_bytes,
    )
    app.state.node = node
    app.state.limits = limits = Limits(node.settings)
    return SubmitRoutes(app, node, limits)
