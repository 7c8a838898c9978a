"""A `/v1` route, declared once: its method and path, who may call it, the types of its
body, query and answers, and its handler. The route table (api/table.py) registers each
route with the framework and generates its OpenAPI entry (api/openapi.py) from the same
declaration, so a route cannot exist undocumented.

A handler gets a `Call`: the node, the caller (identified once, by the front door:
api/door.py), the path parameters, and the body and query already decoded into their
types (whose constraints are the document's). It returns the answer's struct (encoded
with the route's status), `(status, struct)` when the status depends on the outcome,
None for 204, or a framework Response (an event stream).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, TypeVar

import msgspec
from litestar import Request, Response

from ..config import Settings
from ..contract import TEXT
from ..engine.node import Node
from ..errors import InvalidRequest, NotFound, PayloadTooLarge, Unauthorized, Unprocessable
from ..rawjson import MAX_DEPTH
from .limits import Limits

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


class Access(Enum):
    """Who may call a route. The front door answers the others: 401 on a tenant's route
    without a tenant's key; 404 on an admin route to any key but the admin key."""

    ANYONE = "anyone"
    TENANT = "tenant"
    ADMIN = "admin"
    TENANT_OR_ADMIN = "tenant or admin"
    WORKER = "tenant, admin or the pool key"  # what a worker's supervisor holds


class Caller(msgspec.Struct, frozen=True):
    """Who is calling, as the front door identified them."""

    kind: str  # tenant, admin, pool (a shared pool's worker), anonymous, unknown, blocked
    tenant_id: str = ""  # a tenant's (SHARED for a pool)
    actor: str = ""  # as the audit log names it: "admin", or "key:<key id>"


ANONYMOUS = Caller("anonymous")
BLOCKED = Caller("blocked")  # an address that sent too many unknown keys (api/limits.py)
ADMIN_404 = "no such endpoint for this key (admin endpoints answer only the admin key)"
MISSING_KEY = "send an API key as 'Authorization: Bearer <key>'"
# The callers each rule lets in, besides the admin route's admin.
_LET_IN = {
    Access.TENANT: {"tenant"},
    Access.TENANT_OR_ADMIN: {"tenant", "admin"},
    Access.WORKER: {"tenant", "admin", "pool"},
}


def check_access(access: Access, caller: Caller) -> None:
    """Raise what a route answers a caller its rule does not let in: 404 on an admin
    route (as if it did not exist), 401 on the others. The front door asks first; the
    handler's wrapper (`run`) and the console ask again, so a request that reaches a
    handler by a path the framework reads differently from the door (`/v1/tenants/`,
    `/v1//tenants`) is refused, never served to nobody."""
    if access is Access.ANYONE:
        return
    if access is Access.ADMIN:
        if caller.kind != "admin":
            raise NotFound(ADMIN_404, code="not_found")
        return
    if caller.kind == "anonymous":
        raise Unauthorized(MISSING_KEY, code="missing_key")
    if caller.kind not in _LET_IN[access] or (caller.kind != "admin" and not caller.tenant_id):
        raise Unauthorized("the API key is unknown or revoked", code="invalid_key")


def caller_of(scope_state: Any) -> Caller:
    """The caller the front door put in the connection's state (ASGI `scope["state"]`)."""
    caller = getattr(scope_state, "caller", None)
    return caller if isinstance(caller, Caller) else ANONYMOUS


@dataclass
class Call:
    """What a handler gets."""

    node: Node
    limits: Limits
    caller: Caller
    path: dict[str, str]
    body: Any
    query: Any
    request: Request[Any, Any, Any]

    @property
    def tenant(self) -> str:
        return self.caller.tenant_id


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Events:
    """An answer of server-sent events: each event's name and the type of its data."""

    kinds: dict[str, type]


Method = Literal["GET", "POST", "PUT", "DELETE"]


@dataclass(frozen=True)
class Route:
    method: Method
    path: str  # as OpenAPI writes it: /v1/tasks/{task_id}
    operation: str  # the operationId
    summary: str
    handler: Handler
    answers: dict[int, type | str | Events | None]  # the first is the usual status
    access: Access = Access.TENANT
    body: type | None = None
    body_bytes: Callable[[Settings], int] | None = None  # None: the node's max_body_bytes
    raw_body: bool = False  # the handler gets the body's bytes (it decodes them itself)
    query: type | None = None
    tags: tuple[str, ...] = ()
    errors: dict[int, str] = field(default_factory=dict)  # statuses only this route gives

    @property
    def status(self) -> int:
        return next(iter(self.answers))

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


def decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    """A body decoder: the types' constraints apply; `strict=False` takes 5.0 where an
    integer is expected, as JSON Schema (and so the OpenAPI document) does."""
    return msgspec.json.Decoder(type_, strict=False)


def decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    """A body into its type; a ClientError naming the field at fault, if it is not one."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, at = where(str(exc))
        raise InvalidRequest(message, field=at) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from exc
    except RecursionError as exc:  # msgspec's own depth limit, far past MAX_DEPTH
        raise Unprocessable(
            f"the body nests deeper than {MAX_DEPTH} levels", code="too_deep"
        ) from exc


def convert(fields: dict[str, Any], type_: type[T]) -> T:
    """A query string's fields into their type, with the errors of a body."""
    try:
        return msgspec.convert(fields, type_, strict=False)
    except msgspec.ValidationError as exc:
        message, at = where(str(exc))
        raise InvalidRequest(message, field=at and at.split("[")[0]) from exc


_PRINTABLE = re.compile(TEXT)
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]*)`")


def where(message: str) -> tuple[str, str | None]:
    """msgspec's "... - at `$.a.b`" as (message, "a.b"); an unknown field is named in the
    path too, so `field` always points at the part of the request at fault."""
    message, _, path = message.partition(" - at `$")
    at = path.rstrip("`").removeprefix(".")
    unknown = _UNKNOWN.match(message)
    if unknown:
        at = f"{at}.{unknown[1]}" if at else unknown[1]
    return message, at or None


def query_fields(type_: type, params: Any) -> dict[str, Any]:
    """The query string's values of the type's fields: a list field takes every value of
    its parameter, the others the first. Parameters the type does not name are ignored."""
    out: dict[str, Any] = {}
    for info in msgspec.structs.fields(type_):
        values = params.getall(info.name, [])
        if values:
            out[info.name] = values if _is_list(info.type) else values[0]
    return out


def _is_list(annotation: Any) -> bool:
    return "list[" in repr(annotation)


async def run(route: Route, request: Request[Any, Any, Any]) -> Response[Any]:
    """Call a route's handler on a request the front door let through."""
    state = request.app.state
    node: Node = state.node
    limits: Limits = state.limits
    caller = caller_of(request.state)
    check_access(route.access, caller)  # fails closed: no caller is ANONYMOUS
    body: Any = None
    if route.body is not None:
        settings = node.settings
        limit = route.body_bytes(settings) if route.body_bytes else settings.max_body_bytes
        raw = await request.body()
        if len(raw) > limit:
            raise PayloadTooLarge(f"the request body takes {len(raw)} bytes; the limit is {limit}")
        body = raw if route.raw_body else decode(_decoders[route.body], raw)
    query: Any = None
    if route.query is not None:
        query = convert(query_fields(route.query, request.query_params), route.query)
    path = {name: str(request.path_params[name]) for name in route.params}
    for name, value in path.items():
        if not _PRINTABLE.match(value):  # no id or name holds one; the store cannot either
            raise InvalidRequest(f"{name} holds a control character", field=name)
    answer = await route.handler(Call(node, limits, caller, path, body, query, request))
    if isinstance(answer, Response):
        return answer
    status = route.status
    if isinstance(answer, tuple):
        status, answer = answer
    if answer is None:
        return Response(b"", status_code=status)
    return Response(_encoder.encode(answer), status_code=status, media_type="application/json")


class _Decoders(dict[type, msgspec.json.Decoder[Any]]):
    """One decoder per body type, made on first use."""

    def __missing__(self, type_: type) -> msgspec.json.Decoder[Any]:
        made = self[type_] = decoder(type_)
        return made


_decoders = _Decoders()
