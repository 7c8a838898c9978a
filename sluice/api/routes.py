"""Task, tenant and health endpoints under `/v1`."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ..engine.admission import TaskSpec, check_function
from ..engine.audit import ADMIN, key_actor
from ..engine.node import Node, hash_key
from ..engine.targets import check_target
from ..errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unprocessable,
)
from ..model import FUNCTION_NAME, TERMINAL, FunctionConfig
from ..rawjson import MAX_DEPTH
from ..selector import Selector, SelectorBody
from ..store import DeadSelector
from .limits import Limits
from .schemas import (
    BatchRequest,
    BulkCount,
    DeadPage,
    FunctionList,
    FunctionSettings,
    FunctionView,
    Health,
    KeyList,
    NewKey,
    RetryCount,
    StateChange,
    TargetState,
    TaskPage,
    TaskView,
    TenantCreate,
    TenantList,
    TenantView,
    task_view,
)

_encoder = msgspec.json.Encoder()
T = TypeVar("T")
TASK_PAGE = 100
EVENTS_POLL_S = 0.5
MAX_TASK_PAGE = 1000
DEAD_PAGE = 100
MAX_DEAD_PAGE = 1000
MAX_FUNCTION_PAGE = 1000  # as many as a tenant may have, so one page is all of them

BODY_OVERHEAD = 64 * 1024  # room for the envelope beyond the payload limit
ADMIN_404 = "no such endpoint for this key (admin endpoints answer only the admin key)"


def node_of(state: State) -> Node:
    node: Node = state.node
    return node


def bearer(headers: Any) -> str:
    value = str(headers.get("authorization", ""))
    scheme, _, key = value.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>'", code="missing_key")
    return key.strip()


async def tenant_of(request: Request[Any, Any, Any]) -> str:
    return (await caller_of(request))[0]


async def caller_of(request: Request[Any, Any, Any]) -> tuple[str, str]:
    """The caller's tenant, and the caller as the audit log names it (the key's id).
    An address that sent too many unknown keys is refused first (api/limits.py)."""
    key = bearer(request.headers)
    failures = limits_of(request.app.state).auth_failures
    address = request.client.host if request.client else ""
    failures.check(address)
    tenant_id = await node_of(request.app.state).authenticate(key)
    if tenant_id is None:
        failures.failed(address)
        raise Unauthorized("the API key is unknown or revoked", code="invalid_key")
    return tenant_id, key_actor(hash_key(key)[:16])


def limits_of(state: State) -> Limits:
    limits: Limits = state.limits
    return limits


def decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    """A body decoder: the types' constraints apply; `strict=False` takes 5.0 where an
    integer is expected, as JSON Schema (and so the OpenAPI document) does."""
    return msgspec.json.Decoder(type_, strict=False)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, field = _where(str(exc))
        raise InvalidRequest(message, field=field) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from exc
    except RecursionError as exc:  # msgspec's own depth limit, far past MAX_DEPTH
        raise Unprocessable(
            f"the body nests deeper than {MAX_DEPTH} levels", code="too_deep"
        ) from exc


_spec_decoder = decoder(TaskSpec)
_batch_decoder = decoder(BatchRequest)
_tenant_decoder = decoder(TenantCreate)
_function_decoder = decoder(FunctionSettings)
_selector_decoder = decoder(DeadSelector)
_selector_body_decoder = decoder(SelectorBody)


_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]*)`")


def _where(message: str) -> tuple[str, str | None]:
    """msgspec's "... - at `$.a.b`" as (message, "a.b"); an unknown field is named in the
    path too, so `field` always points at the part of the request at fault."""
    message, _, path = message.partition(" - at `$")
    field = path.rstrip("`").removeprefix(".")
    unknown = _UNKNOWN.match(message)
    if unknown:
        field = f"{field}.{unknown[1]}" if field else unknown[1]
    return message, field or None


async def _body(request: Request[Any, Any, Any], limit: int) -> bytes:
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLarge(f"the request body takes {len(body)} bytes; the limit is {limit}")
    return body


def _json(value: object, status: int = 200) -> Response[bytes]:
    return Response(_encoder.encode(value), status_code=status, media_type="application/json")


async def _view(node: Node, tenant_id: str, task_id: str, wait: float = 0.0) -> TaskView:
    task = (
        await node.wait(tenant_id, task_id, wait)
        if wait > 0
        else await node.get_task(tenant_id, task_id)
    )
    attempts = await node.store.list_attempts(tenant_id, task_id)
    events = await node.store.list_events(tenant_id, task_id)
    return task_view(task, attempts, events)


@get("/v1/tasks/{task_id:str}", summary="A task with its timeline and attempts", tags=["tasks"])
async def get_task(request: Request[Any, Any, Any]) -> Response[TaskView]:
    tenant_id = await tenant_of(request)
    task_id = request.path_params["task_id"]
    return _json(await _view(node_of(request.app.state), tenant_id, task_id))  # type: ignore[return-value]


@get(
    "/v1/tasks/{task_id:str}/result",
    summary="Wait for a task to end (long-poll)",
    description="Returns the task once it is terminal, or as it is after `timeout` seconds.",
    tags=["tasks"],
)
async def wait_result(request: Request[Any, Any, Any]) -> Response[TaskView]:
    tenant_id, actor = await caller_of(request)
    node = node_of(request.app.state)
    task_id = request.path_params["task_id"]
    try:
        timeout = float(request.query_params.get("timeout", "30"))
    except ValueError:
        timeout = -1.0
    if not 0 <= timeout <= node.settings.max_wait_s:
        raise InvalidRequest(
            f"timeout must be between 0 and {node.settings.max_wait_s:g} seconds", field="timeout"
        )
    if timeout == 0:
        return _json(await _view(node, tenant_id, task_id))  # type: ignore[return-value]
    with limits_of(request.app.state).streams.hold(actor):
        return _json(await _view(node, tenant_id, task_id, timeout))  # type: ignore[return-value]


async def admin_only(request: Request[Any, Any, Any]) -> Node:
    """The node, for the admin key; any other caller (no key, a tenant's key, a wrong
    key) gets the 404 of a route that does not exist, as docs/api.md says. A key that is
    no key at all counts as a failure of its address, so the admin key is not guessed."""
    node = node_of(request.app.state)
    scheme, _, key = str(request.headers.get("authorization", "")).partition(" ")
    key = key.strip()
    if scheme.lower() == "bearer" and key:
        failures = limits_of(request.app.state).auth_failures
        address = request.client.host if request.client else ""
        failures.check(address)
        if node.is_admin(key):
            return node
        if await node.authenticate(key) is None:
            failures.failed(address)
    raise NotFound(ADMIN_404, code="not_found")


async def _tenant_exists(node: Node, tenant_id: str) -> None:
    if await node.store.get_tenant(tenant_id) is None:
        raise NotFound(f"no tenant {tenant_id}", code="tenant_not_found", field="tenant_id")


@get("/v1/tenants", summary="Every tenant (admin)", tags=["tenants"])
async def list_tenants(request: Request[Any, Any, Any]) -> Response[TenantList]:
    node = await admin_only(request)
    return _json(TenantList(await node.store.list_tenants()))  # type: ignore[return-value]


@post(
    "/v1/tenants/{tenant_id:str}/keys",
    status_code=201,
    summary="A new API key for a tenant, shown once (admin)",
    tags=["tenants"],
)
async def create_key(request: Request[Any, Any, Any]) -> Response[NewKey]:
    node = await admin_only(request)
    tenant_id = request.path_params["tenant_id"]
    await _tenant_exists(node, tenant_id)
    key = await node.create_api_key(tenant_id)
    await node.audit.record(ADMIN, tenant_id, "key.create", detail=hash_key(key)[:16])
    return _json(NewKey(hash_key(key)[:16], key), 201)  # type: ignore[return-value]


@get(
    "/v1/tenants/{tenant_id:str}/keys",
    summary="A tenant's API keys, without the keys (admin)",
    tags=["tenants"],
)
async def list_keys(request: Request[Any, Any, Any]) -> Response[KeyList]:
    node = await admin_only(request)
    tenant_id = request.path_params["tenant_id"]
    await _tenant_exists(node, tenant_id)
    return _json(KeyList(await node.store.list_api_keys(tenant_id)))  # type: ignore[return-value]


@delete(
    "/v1/tenants/{tenant_id:str}/keys/{key_id:str}",
    status_code=204,
    summary="Revoke an API key; it stops working at once (admin)",
    tags=["tenants"],
)
async def revoke_key(request: Request[Any, Any, Any]) -> None:
    node = await admin_only(request)
    tenant_id, key_id = request.path_params["tenant_id"], request.path_params["key_id"]
    await node.revoke_api_key(tenant_id, key_id)
    await node.audit.record(ADMIN, tenant_id, "key.revoke", detail=key_id)


@post(
    "/v1/tenants",
    status_code=201,
    summary="Create a tenant and its first API key (admin)",
    tags=["tenants"],
)
async def create_tenant(request: Request[Any, Any, Any]) -> Response[TenantView]:
    node = await admin_only(request)
    body = _decode(_tenant_decoder, await _body(request, 4096))
    tenant = await node.create_tenant(body.name)
    key = await node.create_api_key(tenant.id)
    await node.audit.record(ADMIN, tenant.id, "tenant.create", detail=body.name)
    return _json(TenantView(tenant.id, tenant.name, key), 201)  # type: ignore[return-value]


@post(
    "/v1/tasks/{task_id:str}/cancel",
    status_code=200,
    summary="Cancel a task that has not ended",
    tags=["tasks"],
)
async def cancel_task(request: Request[Any, Any, Any]) -> Response[TaskView]:
    tenant_id = await tenant_of(request)
    node = node_of(request.app.state)
    task_id = request.path_params["task_id"]
    await node.cancel(tenant_id, task_id)
    return _json(await _view(node, tenant_id, task_id))  # type: ignore[return-value]


@post(
    "/v1/tasks/{task_id:str}/retry",
    status_code=200,
    summary="Run a dead task again (a new attempt series)",
    tags=["dead letters"],
)
async def retry_task(request: Request[Any, Any, Any]) -> Response[TaskView]:
    tenant_id = await tenant_of(request)
    node = node_of(request.app.state)
    task_id = request.path_params["task_id"]
    await node.retry(tenant_id, task_id)
    return _json(await _view(node, tenant_id, task_id))  # type: ignore[return-value]


@get(
    "/v1/tasks/{task_id:str}/events",
    summary="A task's state changes as server-sent events, until it ends",
    tags=["tasks"],
)
async def task_events(request: Request[Any, Any, Any]) -> ServerSentEvent:
    tenant_id, actor = await caller_of(request)
    node = node_of(request.app.state)
    task_id = request.path_params["task_id"]
    await node.get_task(tenant_id, task_id)  # a 404 before the stream starts
    streams = limits_of(request.app.state).streams
    streams.check(actor)  # a 429 before it starts; the stream holds its slot below

    async def changes() -> AsyncIterator[ServerSentEventMessage]:
        with streams.hold(actor):
            async for message in _changes():
                yield message

    async def _changes() -> AsyncIterator[ServerSentEventMessage]:
        last: tuple[str, int] | None = None
        wait = 0.0  # the first event is the state as it is now
        while True:
            # Wakes at once when the task ends; polls for the steps in between.
            task = await node.wait(tenant_id, task_id, wait)
            wait = EVENTS_POLL_S
            if (task.state, task.attempt) != last:
                last = (task.state, task.attempt)
                change = StateChange(
                    task.id, task.state, task.attempt,
                    msgspec.Raw(task.result) if task.result is not None else None, task.error,
                )  # fmt: skip
                yield ServerSentEventMessage(
                    data=_encoder.encode(change).decode(), event="state",
                    id=f"{task.attempt}:{task.state}",
                )  # fmt: skip
            if task.state in TERMINAL:
                return

    return ServerSentEvent(changes())


def _number(request: Request[Any, Any, Any], name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # "inf", "nan" and "1e400" parse, and mean nothing here
        raise InvalidRequest(f"{name} must be a finite number", field=name)
    return value


def _limit(request: Request[Any, Any, Any], default: int, most: int) -> int:
    value = _number(request, "limit")
    value = default if value is None else value
    if not 1 <= value <= most or value != int(value):
        raise InvalidRequest(f"limit must be a whole number from 1 to {most}", field="limit")
    return int(value)


@get("/v1/dead", summary="Dead tasks, oldest first, a page at a time", tags=["dead letters"])
async def list_dead(request: Request[Any, Any, Any]) -> Response[DeadPage]:
    tenant_id = await tenant_of(request)
    node = node_of(request.app.state)
    function = request.query_params.get("function")
    if function is not None and not FUNCTION_NAME.match(function):
        raise InvalidRequest(f"function names match {FUNCTION_NAME.pattern}", field="function")
    selector = DeadSelector(function, _number(request, "since"), _number(request, "until"))
    limit = _limit(request, DEAD_PAGE, MAX_DEAD_PAGE)
    after = request.query_params.get("after", "")
    page = await node.store.list_dead(tenant_id, selector, after, limit)
    cursor = page[-1].id if len(page) == limit else None
    return _json(DeadPage(page, cursor))  # type: ignore[return-value]


@post("/v1/dead/retry", status_code=200, summary="Retry every dead task a selector matches",
      tags=["dead letters"])  # fmt: skip
async def retry_dead(request: Request[Any, Any, Any]) -> Response[RetryCount]:
    tenant_id, actor = await caller_of(request)
    node = node_of(request.app.state)
    selector = _decode(_selector_decoder, await _body(request, 4096))
    count = await node.retry_dead(tenant_id, selector)
    await node.audit.record(actor, tenant_id, "dead.retry", selector=selector, count=count)
    return _json(RetryCount(count))  # type: ignore[return-value]


def _selector_from_query(request: Request[Any, Any, Any]) -> Selector:
    """The selector of `GET /v1/tasks`: list fields repeat (`?state=ready&state=running`),
    numbers are finite, and the Selector type's constraints apply as to a body."""
    query = request.query_params
    fields: dict[str, Any] = {
        name: values
        for name, param in (("function", "function"), ("state", "state"), ("tags", "tag"))
        if (values := list(query.getall(param, [])))
    }
    for name in ("priority_min", "priority_max", "created_after", "created_before"):
        value = _number(request, name)
        if value is not None:
            fields[name] = value
    if "key" in query:
        fields["key"] = query["key"]
    return _convert(fields, Selector).validate()


def _convert(fields: dict[str, Any], type_: type[T]) -> T:
    """Fields from a query string into a constrained type, with the errors of a body."""
    try:
        return msgspec.convert(fields, type_, strict=False)
    except msgspec.ValidationError as exc:
        message, field = _where(str(exc))
        raise InvalidRequest(message, field=field and field.split("[")[0]) from exc


@get("/v1/tasks", summary="List and search tasks, newest first", tags=["tasks"])
async def list_tasks(request: Request[Any, Any, Any]) -> Response[TaskPage]:
    tenant_id = await tenant_of(request)
    node = node_of(request.app.state)
    selector = _selector_from_query(request)
    limit = _limit(request, TASK_PAGE, MAX_TASK_PAGE)
    cursor = request.query_params.get("cursor", "")
    page = await node.list_tasks(tenant_id, selector, cursor, limit)
    following = page[-1].id if len(page) == limit else None
    return _json(TaskPage(page, following))  # type: ignore[return-value]


@delete("/v1/tasks/{task_id:str}", status_code=204, summary="Delete a task", tags=["tasks"])
async def delete_task(request: Request[Any, Any, Any]) -> None:
    tenant_id = await tenant_of(request)
    await node_of(request.app.state).delete(tenant_id, request.path_params["task_id"])


async def _bulk(request: Request[Any, Any, Any], verb: str) -> Response[BulkCount]:
    tenant_id, actor = await caller_of(request)
    body = _decode(_selector_body_decoder, await _body(request, 64 * 1024))
    node = node_of(request.app.state)
    count = await node.bulk(tenant_id, verb, body.selector)
    await node.audit.record(actor, tenant_id, f"tasks.{verb}", selector=body.selector, count=count)
    return _json(BulkCount(count))  # type: ignore[return-value]


@post("/v1/tasks/cancel", status_code=200, summary="Cancel every task a selector matches",
      tags=["tasks"])  # fmt: skip
async def cancel_tasks(request: Request[Any, Any, Any]) -> Response[BulkCount]:
    return await _bulk(request, "cancel")


@post("/v1/tasks/delete", status_code=200,
      summary="Delete every task a selector matches (running ones are skipped)",
      tags=["tasks"])  # fmt: skip
async def delete_tasks(request: Request[Any, Any, Any]) -> Response[BulkCount]:
    return await _bulk(request, "delete")


@post("/v1/tasks/retry", status_code=200,
      summary="Retry every dead task a selector matches", tags=["tasks"])  # fmt: skip
async def retry_tasks(request: Request[Any, Any, Any]) -> Response[BulkCount]:
    return await _bulk(request, "retry")


@put("/v1/functions/{name:str}", summary="Create or update a function's config", tags=["functions"])
async def put_function(request: Request[Any, Any, Any]) -> Response[FunctionConfig]:
    tenant_id, actor = await caller_of(request)
    node = node_of(request.app.state)
    name = request.path_params["name"]
    if not FUNCTION_NAME.match(name):
        raise InvalidRequest(f"function names match {FUNCTION_NAME.pattern}", field="name")
    body = _decode(_function_decoder, await _body(request, 16 * 1024))
    config = FunctionConfig(name=name, **msgspec.structs.asdict(body))
    check_function(config, node.settings)
    functions = await node.functions(tenant_id)
    if name not in functions and len(functions) >= node.settings.max_functions:
        raise Conflict(
            f"the tenant has {len(functions)} functions, its limit", code="too_many_functions",
            field="name",
        )  # fmt: skip
    shown = config
    if config.target is not None:
        settings = node.settings
        target = config.target
        old = functions[name].target if name in functions else None
        if target.secret is None and old is not None and old.secret is not None:
            # A config read back (reads never show the secret) and put again keeps it.
            target = msgspec.structs.replace(target, secret=old.secret)
        made = target.secret is None  # check_target makes one
        target = check_target(
            target, settings.targets_allow_loopback, settings.targets_allow_private
        )
        config = msgspec.structs.replace(config, target=target)
        # The signing secret is shown once: in the answer to the PUT that made it.
        shown = config if made else _without_secret(config)
    await node.register_functions(tenant_id, [config])
    await node.audit.record(actor, tenant_id, "function.put", detail=name)
    return _json(shown)  # type: ignore[return-value]


def _without_secret(config: FunctionConfig) -> FunctionConfig:
    """A config as reads show it: a target's signing secret is never sent back."""
    if config.target is None or config.target.secret is None:
        return config
    return msgspec.structs.replace(
        config, target=msgspec.structs.replace(config.target, secret=None)
    )


@get("/v1/functions", summary="The tenant's functions and their config", tags=["functions"])
async def list_functions(request: Request[Any, Any, Any]) -> Response[FunctionList]:
    tenant_id = await tenant_of(request)
    limit = _limit(request, MAX_FUNCTION_PAGE, MAX_FUNCTION_PAGE)
    after = request.query_params.get("after")
    if after is not None and not FUNCTION_NAME.match(after):
        raise InvalidRequest(f"after is a function name: {FUNCTION_NAME.pattern}", field="after")
    functions = await node_of(request.app.state).functions(tenant_id)
    names = sorted(n for n in functions if n > (after or ""))
    page = [_without_secret(functions[n]) for n in names[:limit]]
    following = page[-1].name if len(names) > limit else None
    return _json(FunctionList(page, following))  # type: ignore[return-value]


@get("/v1/functions/{name:str}", summary="One function's config", tags=["functions"])
async def get_function(request: Request[Any, Any, Any]) -> Response[FunctionView]:
    tenant_id = await tenant_of(request)
    name = request.path_params["name"]
    node = node_of(request.app.state)
    config = (await node.functions(tenant_id)).get(name)
    if config is None:
        raise NotFound(f"no function {name!r}", code="unknown_function", field="name")
    state = None
    conn = node.targets.get(tenant_id, name)
    if conn is not None:
        paused = conn.aimd.paused_until
        state = TargetState(
            conn.aimd.limit, conn.aimd.inflight,
            paused if paused > node.clock.now() else None,
        )  # fmt: skip
    pool = None
    aimd = node.adaptive.limits.get((tenant_id, name))
    if aimd is not None:
        paused = aimd.paused_until
        pool = TargetState(aimd.limit, aimd.inflight, paused if paused > node.clock.now() else None)
    config = _without_secret(config)
    view = FunctionView(**msgspec.structs.asdict(config), target_state=state, pool_state=pool)
    return _json(view)  # type: ignore[return-value]


@get("/v1/health", summary="Liveness and connected workers", tags=["ops"])
async def health(state: State) -> Health:
    node = node_of(state)
    return Health("ok" if node.accepting else "stopping", len(node.registry))


ROUTES = [
    list_tasks, delete_task, cancel_tasks, delete_tasks, retry_tasks, get_task, cancel_task,
    retry_task, task_events, list_dead, retry_dead, wait_result, put_function, get_function,
    list_functions, create_tenant, list_tenants, create_key, list_keys, revoke_key, health,
]  # fmt: skip
