"""The submit endpoints, served as plain ASGI in front of the framework.

`POST /v1/tasks` and `POST /v1/tasks/batch` are the hot path: a profile under 32
concurrent producers showed the framework's routing, parameter and response machinery
taking more server time than the submit itself. So these two routes are answered here
directly; everything else passes through to Litestar. They use the same error format
(errors.py) and are documented in openapi.py like the rest.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response, post

from ..engine.node import Node
from ..errors import ClientError, InvalidRequest, PayloadTooLarge, Unauthorized, Unavailable
from .errors import ErrorBody, ErrorResponse
from .limits import Limits
from .routes import BODY_OVERHEAD, _batch_decoder, _decode, _spec_decoder
from .schemas import BatchView, submit_view

log = logging.getLogger("sluice.api")

Scope = dict[str, Any]
_encoder = msgspec.json.Encoder()
_JSON = (b"content-type", b"application/json")


async def _authenticate(node: Node, limits: Limits, scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and key.strip():
                address = (scope.get("client") or ("",))[0]
                limits.auth_failures.check(address)
                tenant_id = await node.authenticate(key.strip())
                if tenant_id is None:
                    limits.auth_failures.failed(address)
                    raise Unauthorized("the API key is unknown or revoked", code="invalid_key")
                return tenant_id
    raise Unauthorized("send an API key as 'Authorization: Bearer <key>'", code="missing_key")


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("the client went away before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _submit_one(node: Node, limits: Limits, scope: Scope, receive: Any) -> tuple[int, bytes]:
    tenant_id = await _authenticate(node, limits, scope)
    body = await _read_body(receive, node.settings.max_payload_bytes + BODY_OVERHEAD)
    (result,) = await node.submit(tenant_id, [_decode(_spec_decoder, body)])
    return (201 if result.created else 200), _encoder.encode(submit_view(result))


async def _submit_batch(
    node: Node, limits: Limits, scope: Scope, receive: Any
) -> tuple[int, bytes]:
    tenant_id = await _authenticate(node, limits, scope)
    settings = node.settings
    limit = settings.max_batch_bytes
    batch = _decode(_batch_decoder, await _read_body(receive, limit))
    if not batch.tasks:
        raise InvalidRequest("a batch holds at least one task", field="tasks")
    if len(batch.tasks) > settings.max_batch:
        raise PayloadTooLarge(
            f"a batch holds at most {settings.max_batch} tasks", code="batch_too_large",
            field="tasks",
        )  # fmt: skip
    results = await node.submit(tenant_id, batch.tasks)
    return 201, _encoder.encode(BatchView([submit_view(r) for r in results]))


ROUTES = {"/v1/tasks": _submit_one, "/v1/tasks/batch": _submit_batch}


async def _routed(request: Request[Any, Any, Any], handler: Any) -> Response[bytes]:
    state = request.app.state
    status, body = await handler(state.node, state.limits, request.scope, request.receive)
    return Response(body, status_code=status, media_type="application/json")


# The same routes, declared to the framework: SubmitRoutes answers them first, and these
# make the router's 405s and OPTIONS name POST (and `/v1/tasks/batch` a route of its own).
@post("/v1/tasks", include_in_schema=False)
async def submit_task(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _routed(request, _submit_one)


@post("/v1/tasks/batch", include_in_schema=False)
async def submit_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _routed(request, _submit_batch)


SUBMIT_ROUTES = [submit_task, submit_batch]


class SubmitRoutes:
    """ASGI middleware: answers the submit routes, passes everything else on."""

    def __init__(self, app: Any, node: Node, limits: Limits) -> None:
        self.app = app
        self.node = node
        self.limits = limits
        self._methods = _methods_by_path(app)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        handler = ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            await self._options(scope, send)
            return
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = [_JSON]
        try:
            status, body = await handler(self.node, self.limits, scope, receive)
        except ClientError as exc:
            status = exc.status
            body = _encoder.encode(
                ErrorResponse(
                    ErrorBody(status, exc.code, exc.message, exc.field, getattr(exc, "scope", None))
                )
            )
            retry_after = getattr(exc, "retry_after_s", None)
            if retry_after is not None:  # 429s always say when to come back
                headers.append((b"retry-after", str(retry_after).encode()))
        except Unavailable as exc:
            status = 503
            body = _encoder.encode(
                ErrorResponse(ErrorBody(503, exc.code, exc.message, scope=exc.scope))
            )
            headers.append((b"retry-after", str(exc.retry_after_s).encode()))
        except Exception:
            log.exception("submit failed")
            status = 500
            message = "the server failed; the error is logged"
            body = _encoder.encode(ErrorResponse(ErrorBody(500, "internal", message)))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _options(self, scope: Scope, send: Any) -> None:
        """OPTIONS names every method of the route: the framework's own answer names
        only the methods of the first handler registered on a path (litestar 2.25)."""
        path = scope.get("path", "")
        methods = next((m for pattern, m in self._methods if pattern.fullmatch(path)), None)
        if methods is None:
            body = _encoder.encode(ErrorResponse(ErrorBody(404, "not_found", "no such endpoint")))
            head = [_JSON, (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 404, "headers": head})
            await send({"type": "http.response.body", "body": body})
            return
        allow = ", ".join(sorted({*methods, "OPTIONS"})).encode()
        await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow)]})
        await send({"type": "http.response.body", "body": b""})


def _methods_by_path(app: Any) -> list[tuple[re.Pattern[str], set[str]]]:
    """Each route's path as a pattern, with its methods; paths without parameters first,
    as the router matches them (`/v1/tasks/batch` before `/v1/tasks/{task_id}`)."""
    by_path: dict[str, set[str]] = {}
    for route in app.routes:
        methods = getattr(route, "methods", None)
        if methods:
            by_path.setdefault(route.path, set()).update(methods)
    ordered = sorted(by_path.items(), key=lambda item: ("{" in item[0], item[0]))
    return [(re.compile(_PARAM.sub("[^/]+", re.escape(path))), m) for path, m in ordered]


_PARAM = re.compile(r"\\\{[^}]*\\\}")  # a path parameter, as re.escape leaves it
