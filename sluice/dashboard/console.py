"""The web console (DESIGN §8; OBSERVABILITY.md §1.3): server-rendered pages, htmx for
live parts and actions, served by every server node at `/`.

The console reads and acts through the HTTP API's own route handlers, called in process
with the signed-in caller (`Console.api`): the same validation, the same tenant scoping
and the same audit entries as a curl call, so the console cannot show or do anything
the caller's key could not. Pages are tenant-scoped; the admin picks the tenant to look
at (and sees the tenants page, which is the admin's alone).

Live parts poll small fragments (`hx-trigger="every 2s"`, paused while the tab is hidden
or by the "live" switch); the figures behind them are computed once per interval per
scope whatever the number of viewers (dashboard/live.py). No request counts or offsets
over tasks: lists are keyset pages, counts before a bulk action are capped.
"""

from __future__ import annotations

import datetime
import json
import math
import secrets
import time
from pathlib import Path
from typing import Any

import jinja2
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import MultiDict
from litestar.static_files import create_static_files_router

from ..api.limits import Limits
from ..api.route import (
    Call,
    Caller,
    Route,
    check_access,
    convert,
    decode,
    decoder,
    query_fields,
)  # fmt: skip
from ..api.table import ROUTES
from ..engine.node import Node
from ..engine.tenants import hash_key
from ..errors import InvalidRequest
from ..model import SHARED
from .live import Shared
from .session import COOKIE, Session, Sessions, admin_digest

HERE = Path(__file__).parent
CONSOLE_SECRET = "console-session"  # the store's name of the sessions' signing key
COUNT_CAP = 10_000  # a bulk action's count before it is confirmed: "10,000+" past it
DEAD_SCAN = 2_000  # dead letters grouped on the dead-letter page (the oldest first)
STATES = ("scheduled", "ready", "paused", "running", "succeeded", "dead", "cancelled", "expired")
_ROUTES: dict[tuple[str, str], Route] = {(r.method, r.path): r for r in ROUTES}
_json = msgspec.json.Encoder()


class Console:
    def __init__(self, node: Node, limits: Limits) -> None:
        self.node = node
        self.limits = limits
        s = node.settings
        self.sessions = Sessions(s.console_secret)
        self.secure = bool(s.tls_cert)
        self.shared = Shared(node.clock.monotonic)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            when=_when, ago=_ago, secs=_secs, num=_num, js=_js, isotime=_isotime, listed=_listed
        )

    # -- who is asking -------------------------------------------------------------

    async def _keyed(self) -> None:
        """The signing key, read once: SLUICE_CONSOLE_SECRET, else the cluster's own,
        made by the first node that needed it and kept in the store."""
        if not self.sessions.keyed:
            key = await self.node.store.keep_secret(
                CONSOLE_SECRET, secrets.token_bytes(32), self.node.clock.now()
            )
            self.sessions.use(key)

    async def session(self, request: Request[Any, Any, Any]) -> Session | None:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        await self._keyed()
        session = self.sessions.read(cookie)
        if session is None:
            return None
        if session.admin:
            admin = self.node.settings.admin_key
            return session if admin and session.d == admin_digest(admin) else None
        tenant_id = await self.node.tenants.authenticate_digest(session.d)
        return session if tenant_id == session.t else None

    async def sign_in(self, key: str) -> Session | None:
        await self._keyed()
        key = key.strip()
        tenants = self.node.tenants
        if tenants.is_admin(key):
            made = self.sessions.make("admin", "", admin_digest(key))
        else:
            tenant_id = await tenants.authenticate(key)
            if tenant_id is None or tenant_id == SHARED:
                return None
            made = self.sessions.make("tenant", tenant_id, hash_key(key))
        return self.sessions.read(made)

    def caller(self, session: Session) -> Caller:
        actor = "admin" if session.admin else f"console:{session.d[:16]}"
        return Caller("tenant", session.t, actor=actor)

    # -- the API, in process -------------------------------------------------------

    async def api(
        self,
        request: Request[Any, Any, Any],
        session: Session,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """Call an API route's handler as the session's caller."""
        route = _ROUTES[(method, path)]
        if not session.t:
            raise InvalidRequest("pick a tenant to look at first", code="no_tenant")
        q: Any = None
        if route.query is not None:
            pairs = [(k, v) for k, vs in (query or {}).items() for v in _listed(vs) if v != ""]
            q = convert(query_fields(route.query, MultiDict(pairs)), route.query)
        b: Any = None
        if route.body is not None:
            raw = body if isinstance(body, bytes) else _json.encode(body)
            b = raw if route.raw_body else decode(decoder(route.body), raw)
        caller = self.caller(session)
        check_access(route.access, caller)  # the console acts as a tenant: no admin route
        call = Call(self.node, self.limits, caller, params or {}, b, q, request)
        return await route.handler(call)

    # -- pages ---------------------------------------------------------------------

    def render(
        self, name: str, session: Session | None, status: int = 200, **context: Any
    ) -> Response[str]:
        context.setdefault("csrf", self.sessions.csrf(session) if session else "")
        context.setdefault("session", session)
        context.setdefault("tenants", [])
        context.setdefault("page", name.split(".")[0])
        context.setdefault("error", None)
        html = self.env.get_template(name).render(**context)
        return Response(html, status_code=status, media_type="text/html", headers=HEADERS)

    def cookie_headers(
        self, value: str, max_age: float, request: Request[Any, Any, Any]
    ) -> dict[str, str]:
        # Secure when this node serves HTTPS, or a proxy it trusts (uvicorn's
        # FORWARDED_ALLOW_IPS) says the browser's request was HTTPS (TLS ended there).
        https = self.secure or request.url.scheme == "https"
        secure = "; Secure" if https else ""
        cookie = (
            f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(max_age)}{secure}"
        )
        return {"set-cookie": cookie}


HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


# -- template filters ----------------------------------------------------------------


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _isotime(epoch: float | None) -> str:
    """For a datetime-local input: UTC, to the second."""
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(float(epoch), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _ago(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    delta = time.time() - epoch
    suffix = "ago" if delta >= 0 else "from now"
    return f"{_secs(abs(delta))} {suffix}"


def _secs(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _js(value: Any) -> str:
    """JSON for a `<script type="application/json">` block: no `<`, `>` or `&` in it as
    such, so no `</script` or `<!--` can end or bend the block (the same JSON, escaped)."""
    return json.dumps(value, default=str).translate(_SCRIPT_SAFE)


# -- handlers ------------------------------------------------------------------------


def _handler(console: Console, page: Any) -> Any:
    from . import pages

    async def handle(request: Request[Any, Any, Any]) -> Response[Any]:
        return await pages.serve(console, request, page)

    return handle


def console_handlers(console: Console) -> list[Any]:
    """The console's routes (outside /v1: the front door passes them to the framework)."""
    from . import pages

    static = create_static_files_router(path="/ui/static", directories=[HERE / "static"],
                                        name="console-static")  # fmt: skip
    handlers: list[Any] = [static]
    for method, path, page in pages.ROUTES:
        decorator = get if method == "GET" else post
        handlers.append(decorator(path, name=f"console {method} {path}", include_in_schema=False,
                                  status_code=200)(_handler(console, page)))  # fmt: skip
    return handlers
