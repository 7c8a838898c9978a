"""The front door: every request comes in here first (DESIGN §9).

It finds the request's route in the route table, and for a route that needs a caller
identifies them once: the admin key, a tenant's key, or (on the worker socket) the pool
key. An address that sent too many unknown keys this minute is refused before any key
is looked at (api/limits.py). The caller goes into the connection's state for the
handler; a route's access rule is enforced here, so no handler authenticates:

- a tenant's route without a tenant's key: 401 `missing_key` / `invalid_key`;
- an admin route to any key but the admin key: 404, as if it did not exist.

The two submit routes are answered here as well, straight from the ASGI scope (the hot
path: api/submit.py); OPTIONS is answered from the table. Everything else goes on to
the framework.
"""

from __future__ import annotations

import logging
import re
import weakref
from typing import Any

from ..engine.node import Node
from ..engine.tenants import hash_key, key_id
from ..errors import NotFound, TooManyRequests
from ..model import SHARED
from . import submit
from .errors import answer
from .limits import Limits
from .route import ANONYMOUS, BLOCKED, Access, Caller, Route, check_access
from .stream import SubmitStream

log = logging.getLogger("sluice.api")

Scope = dict[str, Any]
_SUBMITS = {"/v1/tasks", "/v1/tasks/batch"}


class FrontDoor:
    def __init__(self, app: Any, node: Node, limits: Limits, routes: list[Route]) -> None:
        self.app = app
        self.node = node
        self.limits = limits
        self._paths = _paths(routes)
        self._submits = {r.path: r for r in routes if r.method == "POST" and r.path in _SUBMITS}
        self._worker_paths: set[str] = set()
        self.streams: weakref.WeakSet[SubmitStream] = weakref.WeakSet()  # submit streams

    async def open_stream(
        self, headers: list[tuple[bytes, bytes]], client: Any, connections: set[Any],
        tasks: set[Any], request_timeout_s: float,
    ) -> SubmitStream:  # fmt: skip
        """A submit stream (api/stream.py) for a key `POST /v1/tasks` admits: a tenant's.
        Anything else raises what that route would answer (401, 429)."""
        scope = {"headers": headers, "client": client}
        caller = await self._admit(self._submits["/v1/tasks"], scope)
        digest, tenants = hash_key(_bearer(scope) or ""), self.node.tenants

        async def admitted() -> bool:
            """The key still admitted (from the cache a request's check reads)."""
            return await tenants.authenticate_digest(digest) == caller.tenant_id

        opened = SubmitStream(self.node, caller.tenant_id, admitted, connections, tasks,
                              request_timeout_s)  # fmt: skip
        self.streams.add(opened)
        return opened

    def worker_path(self, path: str) -> None:
        """A websocket path whose caller is a worker (a tenant's key, or the pool key)."""
        self._worker_paths.add(path)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "websocket" and _canonical(_routed(scope)) in self._worker_paths:
            try:
                caller = await self._identify(scope, pool=True)
            except TooManyRequests:
                caller = BLOCKED  # the socket is closed with 4429 (api/workers.py)
            scope.setdefault("state", {})["caller"] = caller
            await self.app(scope, receive, send)
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        path, method = _routed(scope), scope["method"]
        submitting = method == "POST" and path in self._submits
        if submitting:  # the hot path: no search
            route: Route | None = self._submits[path]
        else:
            # As the framework reads it (trailing and repeated slashes dropped), so a
            # route's rule holds for `/v1/tenants/` and `/v1//tenants` too.
            found = self._match(_canonical(path))
            if method == "OPTIONS":
                await self._options(found, send)
                return
            route = found[1].get(method) if found is not None else None
        if route is None or route.access is Access.ANYONE:
            await self.app(scope, receive, send)  # the framework answers 404, 405 or it
            return
        try:
            caller = await self._admit(route, scope)
            if submitting:
                status, body = await submit.answer(
                    self.node, caller.tenant_id, path, receive, scope["headers"]
                )
                await _send(send, status, {}, body)
                return
        except Exception as exc:
            status, headers, body = answer(exc)
            await _send(send, status, headers, body)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    async def _admit(self, route: Route, scope: Scope) -> Caller:
        """The caller, if the route's access rule lets them in."""
        # Only a key that is no key counts as a failure of its address (a tenant's key on
        # an admin route is none).
        caller = await self._identify(scope, pool=route.access is Access.WORKER)
        check_access(route.access, caller)
        return caller

    async def _identify(self, scope: Scope, *, pool: bool) -> Caller:
        key = _bearer(scope)
        if key is None:
            return ANONYMOUS
        failures = self.limits.auth_failures
        address = (scope.get("client") or ("",))[0]
        failures.check(address)
        tenants = self.node.tenants
        if tenants.is_admin(key):
            return Caller("admin", actor="admin")
        tenant_id = await (tenants.authenticate_worker(key) if pool else tenants.authenticate(key))
        if tenant_id == SHARED:
            return Caller("pool", SHARED, actor="pool")
        if tenant_id is not None:
            return Caller("tenant", tenant_id, actor=f"key:{key_id(key)}")
        failures.failed(address)
        return Caller("unknown")

    def _match(self, path: str) -> tuple[re.Pattern[str], dict[str, Route]] | None:
        return next(((p, m) for p, m in self._paths if p.fullmatch(path)), None)

    async def _options(
        self, found: tuple[re.Pattern[str], dict[str, Route]] | None, send: Any
    ) -> None:
        """OPTIONS names every method of the route (the framework's own answer names only
        the methods of the first handler registered on a path)."""
        if found is None:
            status, headers, body = answer(NotFound("no such endpoint", code="not_found"))
            await _send(send, status, headers, body)
            return
        allow = ", ".join(sorted({*found[1], "OPTIONS"}))
        await _send(send, 204, {"allow": allow}, b"", json=False)


def _routed(scope: Scope) -> str:
    """The path the framework routes: without the root path a proxy mounts the server
    under, as litestar's router takes it off."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    return path.split(root, maxsplit=1)[-1] if root else path


def _canonical(path: str) -> str:
    """A path as the framework routes it (litestar.utils.normalize_path): no trailing
    slash, no empty segment. The ASGI server has already decoded `%2F` to `/`."""
    if "//" not in path and (len(path) <= 1 or not path.endswith("/")):
        return path
    return "/" + "/".join(part for part in path.split("/") if part)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            key = key.strip()
            return key if scheme.lower() == "bearer" and key else None
    return None


async def _send(
    send: Any, status: int, headers: dict[str, str], body: bytes, json: bool = True
) -> None:
    head = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if json:
        head.append((b"content-type", b"application/json"))
    head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


_PARAM = re.compile(r"\\\{[^}]*\\\}")  # a path parameter, as re.escape leaves it


def _paths(routes: list[Route]) -> list[tuple[re.Pattern[str], dict[str, Route]]]:
    """Each path as a pattern, with its routes by method; paths without parameters first,
    as the router matches them (`/v1/tasks/batch` before `/v1/tasks/{task_id}`)."""
    by_path: dict[str, dict[str, Route]] = {}
    for route in routes:
        by_path.setdefault(route.path, {})[route.method] = route
    ordered = sorted(by_path.items(), key=lambda item: ("{" in item[0], item[0]))
    return [(re.compile(_PARAM.sub("[^/]+", re.escape(path))), m) for path, m in ordered]
