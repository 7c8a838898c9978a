"""The route table: every route of the HTTP API, declared once (api/route.py).

The application registers each with the framework from here (`handlers`), the OpenAPI
document is generated from here (api/openapi.py), and the front door reads each route's
access rule from here (api/door.py); a test compares the application's routes with the
document.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.handlers import HTTPRouteHandler

from ..contract import Health
from ..errors import Unavailable
from .functions import FUNCTION_ROUTES
from .logs import LOG_ROUTES
from .metrics import METRICS_ROUTES
from .notifications import NOTIFICATION_ROUTES
from .pauses import PAUSE_ROUTES
from .route import Access, Call, Route, run
from .scaling import SCALING_ROUTES
from .schedules import SCHEDULE_ROUTES
from .stats import STATS_ROUTES
from .tasks import TASK_ROUTES
from .tenants import TENANT_ROUTES
from .topics import TOPIC_ROUTES


async def health(call: Call) -> Health:
    return Health("ok" if call.node.accepting else "stopping", len(call.node.registry))


async def ready(call: Call) -> Health:
    """Readiness: 503 from the first stop signal on, so a load balancer (a Kubernetes
    Service) sends no new request to a node that is stopping."""
    if not call.node.accepting:
        raise Unavailable("this node is stopping")
    return Health("ok", len(call.node.registry))


HEALTH_ROUTES = [
    Route("GET", "/v1/health", "health", "Liveness and connected workers", health,
          {200: Health}, access=Access.ANYONE, tags=("ops",)),
    Route("GET", "/v1/ready", "ready", "Readiness: 503 while the node is stopping", ready,
          {200: Health}, access=Access.ANYONE, tags=("ops",),
          errors={503: "The node is stopping"}),
]  # fmt: skip

ROUTES: list[Route] = [
    *TASK_ROUTES, *LOG_ROUTES, *FUNCTION_ROUTES, *TENANT_ROUTES, *SCHEDULE_ROUTES,
    *PAUSE_ROUTES, *TOPIC_ROUTES, *HEALTH_ROUTES, *METRICS_ROUTES, *STATS_ROUTES,
    *NOTIFICATION_ROUTES, *SCALING_ROUTES,
]  # fmt: skip


def handlers(routes: list[Route]) -> list[HTTPRouteHandler]:
    """The framework's handlers of the routes: each decodes and calls its route."""
    return [_handler(route) for route in routes]


def _handler(route: Route) -> HTTPRouteHandler:
    async def handle(request: Request[Any, Any, Any]) -> Response[Any]:
        return await run(route, request)

    path = route.path.replace("}", ":str}")  # the framework's typed path parameters
    # `run` answers with a Response carrying the route's status; the handler's own
    # status_code is never used (and a 204 handler may not be declared to return one).
    return HTTPRouteHandler(
        path=path, http_method=route.method, status_code=200, name=route.operation,
        include_in_schema=False,
    )(handle)  # fmt: skip
