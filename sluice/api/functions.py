"""Function routes: a tenant's functions and their config; an HTTP target's and a
throttled pool's adaptive concurrency."""

from __future__ import annotations

import msgspec

from ..contract import (
    Function,
    FunctionConfig,
    FunctionList,
    FunctionPut,
    FunctionQuery,
    FunctionSettings,
    TargetState,
)
from ..engine.admission import check_function
from ..engine.functions import SETTINGS
from ..engine.receivers import check_destination, check_webhook
from ..engine.targets import check_target
from ..errors import Conflict, InvalidRequest, NotFound, Unprocessable
from ..model import FUNCTION_NAME
from ..store.functions import merged
from .route import Call, Route, decode, decoder

_settings = decoder(FunctionSettings)
_keys = msgspec.json.Decoder(dict[str, msgspec.Raw])


def _name(call: Call) -> str:
    name = call.path["name"]
    if not FUNCTION_NAME.match(name):
        raise InvalidRequest(f"function names match {FUNCTION_NAME.pattern}", field="name")
    return name


async def put_function(call: Call) -> FunctionConfig:
    node, tenant_id, name = call.node, call.tenant, _name(call)
    query: FunctionPut = call.query
    body = decode(_settings, call.body)
    if query.source == "code":
        config = FunctionConfig(name=name, **msgspec.structs.asdict(body))
        if config.target is not None or config.webhooks:
            raise Unprocessable(
                "code does not set HTTP targets or webhooks; an operator's PUT does",
                code="target_not_code", field="target" if config.target else "webhooks",
            )  # fmt: skip
        for destination in config.destinations:
            check_destination(destination)
        check_function(config, node.settings)
        await _check_room(call, tenant_id, name)
        await node.functions.register(tenant_id, [config])
        await node.audit.record(call.caller.actor, tenant_id, "function.code", detail=name)
        return without_secret((await node.functions.of(tenant_id))[name])
    # The fields the body names are the operator's; the others follow the code.
    given = set(_keys.decode(call.body))
    overrides = {f: msgspec.to_builtins(getattr(body, f)) for f in given}
    record = await node.functions.record(tenant_id, name)
    made = False
    if body.target is not None and "target" in given:
        settings = node.settings
        target = body.target
        old = record.config.target if record is not None else None
        if target.secret is None and old is not None and old.secret is not None:
            # A config read back (reads never show the secret) and put again keeps it.
            target = msgspec.structs.replace(target, secret=old.secret)
        made = target.secret is None  # check_target makes one
        target = check_target(
            target, settings.targets_allow_loopback, settings.targets_allow_private
        )
        overrides["target"] = msgspec.to_builtins(target)
    if "webhooks" in given:
        olds = record.config.webhooks if record is not None else []
        policy = node.notifier.policy
        checked = [
            check_webhook(w, next((o for o in olds if o.url == w.url), None), policy)
            for w in body.webhooks
        ]
        # A secret made here is shown once, in this answer, like a target's.
        made = made or any(
            not w.secrets and all(o.url != w.url for o in olds) for w in body.webhooks
        )
        overrides["webhooks"] = msgspec.to_builtins(checked)
    if "destinations" in given:
        overrides["destinations"] = msgspec.to_builtins(
            [check_destination(d) for d in body.destinations]
        )
    config = merged(record.code if record is not None else FunctionConfig(name), overrides)
    check_function(config, node.settings)
    await _check_room(call, tenant_id, name)
    config = await node.functions.set(tenant_id, name, overrides)
    await node.audit.record(call.caller.actor, tenant_id, "function.put", detail=name)
    # The signing secret is shown once: in the answer to the PUT that made it.
    return config if made else without_secret(config)


async def _check_room(call: Call, tenant_id: str, name: str) -> None:
    functions = await call.node.functions.of(tenant_id)
    if name not in functions and len(functions) >= call.node.settings.max_functions:
        raise Conflict(
            f"the tenant has {len(functions)} functions, its limit", code="too_many_functions",
            field="name",
        )  # fmt: skip


async def reset_setting(call: Call) -> Function:
    """Return one setting to the code's value (the default's, if no code registered it)."""
    node, tenant_id, name, field = call.node, call.tenant, _name(call), call.path["field"]
    if field not in SETTINGS:
        raise InvalidRequest(
            f"a function's settings are {', '.join(SETTINGS)}", code="unknown_setting",
            field="field",
        )  # fmt: skip
    record = await node.functions.record(tenant_id, name)
    if record is None:
        raise NotFound(f"no function {name!r}", code="unknown_function", field="name")
    if field in record.overridden:
        kept = {
            f: msgspec.to_builtins(getattr(record.config, f))
            for f in record.overridden
            if f != field
        }
        await node.functions.set(tenant_id, name, kept)
        await node.audit.record(
            call.caller.actor, tenant_id, "function.reset", detail=f"{name}.{field}"
        )
    return await _function(call, tenant_id, name)


def without_secret(config: FunctionConfig) -> FunctionConfig:
    """A config as reads show it: signing secrets (a target's, webhooks') are never
    sent back."""
    if config.target is not None and config.target.secret is not None:
        target = msgspec.structs.replace(config.target, secret=None)
        config = msgspec.structs.replace(config, target=target)
    if any(w.secrets for w in config.webhooks):
        hidden = [msgspec.structs.replace(w, secrets=[]) for w in config.webhooks]
        config = msgspec.structs.replace(config, webhooks=hidden)
    return config


async def list_functions(call: Call) -> FunctionList:
    query: FunctionQuery = call.query
    functions = await call.node.functions.of(call.tenant)
    names = sorted(n for n in functions if n > (query.after or ""))
    page = [without_secret(functions[n]) for n in names[: query.limit]]
    return FunctionList(page, page[-1].name if len(names) > query.limit else None)


async def get_function(call: Call) -> Function:
    return await _function(call, call.tenant, call.path["name"])


async def _function(call: Call, tenant_id: str, name: str) -> Function:
    node = call.node
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
    sources = await node.functions.sources(tenant_id, name)
    return Function(**fields, target_state=state, pool_state=pool, sources=sources)


FUNCTION_ROUTES = [
    Route("PUT", "/v1/functions/{name}", "putFunction",
          "Set the operator's settings of a function (or, with source=code, the code's)",
          put_function, {200: FunctionConfig}, body=FunctionSettings, raw_body=True,
          query=FunctionPut, tags=("functions",),
          errors={403: "The target's address is one the server does not call"}),
    Route("DELETE", "/v1/functions/{name}/settings/{field}", "resetFunctionSetting",
          "Return one setting of a function to the code's value", reset_setting,
          {200: Function}, tags=("functions",)),
    Route("GET", "/v1/functions/{name}", "getFunction",
          "One function's config, and an HTTP target's concurrency limit", get_function,
          {200: Function}, tags=("functions",)),
    Route("GET", "/v1/functions", "listFunctions", "The tenant's functions, by name",
          list_functions, {200: FunctionList}, query=FunctionQuery, tags=("functions",)),
]  # fmt: skip
