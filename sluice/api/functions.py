"""Function routes: a tenant's functions and their config; an HTTP target's and a
throttled pool's adaptive concurrency."""

from __future__ import annotations

import msgspec

from ..contract import (
    Function,
    FunctionConfig,
    FunctionList,
    FunctionQuery,
    FunctionSettings,
    TargetState,
)
from ..engine.admission import check_function
from ..engine.targets import check_target
from ..errors import Conflict, InvalidRequest, NotFound
from ..model import FUNCTION_NAME
from .route import Call, Route


def _name(call: Call) -> str:
    name = call.path["name"]
    if not FUNCTION_NAME.match(name):
        raise InvalidRequest(f"function names match {FUNCTION_NAME.pattern}", field="name")
    return name


async def put_function(call: Call) -> FunctionConfig:
    node, tenant_id, name = call.node, call.tenant, _name(call)
    body: FunctionSettings = call.body
    config = FunctionConfig(name=name, **msgspec.structs.asdict(body))
    check_function(config, node.settings)
    functions = await node.functions.of(tenant_id)
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
        shown = config if made else without_secret(config)
    await node.functions.register(tenant_id, [config])
    await node.audit.record(call.caller.actor, tenant_id, "function.put", detail=name)
    return shown


def without_secret(config: FunctionConfig) -> FunctionConfig:
    """A config as reads show it: a target's signing secret is never sent back."""
    if config.target is None or config.target.secret is None:
        return config
    return msgspec.structs.replace(
        config, target=msgspec.structs.replace(config.target, secret=None)
    )


async def list_functions(call: Call) -> FunctionList:
    query: FunctionQuery = call.query
    functions = await call.node.functions.of(call.tenant)
    names = sorted(n for n in functions if n > (query.after or ""))
    page = [without_secret(functions[n]) for n in names[: query.limit]]
    return FunctionList(page, page[-1].name if len(names) > query.limit else None)


async def get_function(call: Call) -> Function:
    node, tenant_id, name = call.node, call.tenant, call.path["name"]
    config = (await node.functions.of(tenant_id)).get(name)
    if config is None:
        raise NotFound(f"no function {name!r}", code="unknown_function", field="name")
    now = node.clock.now()
    state = None
    conn = node.targets.get(tenant_id, name)
    if conn is not None:
        paused = conn.aimd.paused_until
        state = TargetState(conn.aimd.limit, conn.aimd.inflight, paused if paused > now else None)
    pool = None
    aimd = node.adaptive.limits.get((tenant_id, name))
    if aimd is not None:
        paused = aimd.paused_until
        pool = TargetState(aimd.limit, aimd.inflight, paused if paused > now else None)
    fields = msgspec.structs.asdict(without_secret(config))
    return Function(**fields, target_state=state, pool_state=pool)


FUNCTION_ROUTES = [
    Route("PUT", "/v1/functions/{name}", "putFunction", "Create or update a function's config",
          put_function, {200: FunctionConfig}, body=FunctionSettings, tags=("functions",),
          errors={403: "The target's address is one the server does not call"}),
    Route("GET", "/v1/functions/{name}", "getFunction",
          "One function's config, and an HTTP target's concurrency limit", get_function,
          {200: Function}, tags=("functions",)),
    Route("GET", "/v1/functions", "listFunctions", "The tenant's functions, by name",
          list_functions, {200: FunctionList}, query=FunctionQuery, tags=("functions",)),
]  # fmt: skip
