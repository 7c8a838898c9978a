"""The OpenAPI 3.1 document, generated from the route table (api/table.py): each route's
operation, parameters, body and answers come from its declaration, and every schema
from the contract's structs (sluice/contract/), whose constraints are the decoder's.

Rules between fields that a struct cannot carry but a schema can are added here (at
most one of delay and run_at); limits an operator may change are filled in from the
node's settings ("x-limit" markers); links say where an answer's id feeds another
operation (schemathesis follows them in its stateful run).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..config import Settings
from ..contract import ErrorResponse
from ..engine.functions import SETTINGS
from ..model import FUNCTION_NAME, NAME
from .route import Access, Events, Route

REF = "#/components/schemas/{name}"

ERRORS = {
    400: "The request breaks this document (the error's field says where)",
    401: "Missing or unknown API key",
    404: "Not found",
    409: "Conflict with the task's state",
    413: "Payload or batch too large",
    422: "Well-formed, but a rule this document cannot state refuses it (the code says "
    "which: a cron expression that never fires, priority_min above priority_max, ...)",
    429: "A tenant quota or limit refuses it for now (see Retry-After)",
    431: "The request's head (its line with the query string, and its headers) is too large",
    503: "Not accepting work right now (see Retry-After)",
}
UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
HEX = "^[0-9a-f]{16}$"
# Path parameters: what each may be, so a generated client refuses nonsense up front.
PATH_PARAMETERS = {
    "task_id": UUID,
    "tenant_id": "^[0-9a-f]{32}$",
    "key_id": HEX,
    "pause_id": HEX,
    "webhook_id": HEX,
    "topic": NAME.pattern,
    "pool": NAME.pattern,  # default, shared, or a tenant's id
    "field": f"^({'|'.join(SETTINGS)})$",  # a function's settings
}
NAME_PARAMETER = {"/v1/functions/": FUNCTION_NAME.pattern}  # else NAME

# Where a response's field feeds another operation's parameter: schemathesis follows
# these in its stateful run, and generated clients document them.
LINKS: dict[tuple[str, int], dict[str, tuple[str, dict[str, str]]]] = {
    ("submitTask", 201): {
        "GetTask": ("getTask", {"task_id": "$response.body#/id"}),
        "WaitResult": ("waitResult", {"task_id": "$response.body#/id"}),
        "CancelTask": ("cancelTask", {"task_id": "$response.body#/id"}),
        "DeleteTask": ("deleteTask", {"task_id": "$response.body#/id"}),
        "RetryTask": ("retryTask", {"task_id": "$response.body#/id"}),
        "TaskEvents": ("taskEvents", {"task_id": "$response.body#/id"}),
    },
    ("submitBatch", 201): {
        "GetFirstTask": ("getTask", {"task_id": "$response.body#/tasks/0/id"}),
        "CancelFirstTask": ("cancelTask", {"task_id": "$response.body#/tasks/0/id"}),
    },
    ("createPause", 201): {"DeletePause": ("deletePause", {"pause_id": "$response.body#/id"})},
    ("putSchedule", 200): {
        "GetSchedule": ("getSchedule", {"name": "$response.body#/name"}),
        "PauseSchedule": ("pauseSchedule", {"name": "$response.body#/name"}),
        "ResumeSchedule": ("resumeSchedule", {"name": "$response.body#/name"}),
        "DeleteSchedule": ("deleteSchedule", {"name": "$response.body#/name"}),
    },
    ("putSubscription", 200): {
        "DeleteSubscription": ("deleteSubscription", {"name": "$response.body#/name"}),
        "PostEvent": ("postEvent", {"topic": "$response.body#/topic"}),
    },
    ("putFunction", 200): {"GetFunction": ("getFunction", {"name": "$response.body#/name"})},
    ("createTenant", 201): {
        "CreateKey": ("createKey", {"tenant_id": "$response.body#/id"}),
        "ListKeys": ("listKeys", {"tenant_id": "$response.body#/id"}),
        "GetQuota": ("getQuota", {"tenant_id": "$response.body#/id"}),
        "PutQuota": ("putQuota", {"tenant_id": "$response.body#/id"}),
    },
}


def _hook(t: Any) -> dict[str, Any]:
    if t is msgspec.Raw:
        return {}
    raise NotImplementedError


def _fill_limits(node: Any, settings: Settings) -> Any:
    """Replace each `"x-limit": setting` marker with the keyword that setting bounds for
    the schema's type, so the document states the limits this node enforces."""
    if isinstance(node, list):
        return [_fill_limits(n, settings) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _fill_limits(v, settings) for k, v in node.items() if k != "x-limit"}
    name = node.get("x-limit")
    if name is not None:
        kind = str(node.get("type"))
        keyword = {"array": "maxItems", "string": "maxLength"}.get(kind, "maximum")
        out[keyword] = getattr(settings, name)
    return out


def build_openapi(version: str, settings: Settings, routes: list[Route]) -> dict[str, Any]:
    types: set[type] = {ErrorResponse}
    for route in routes:
        types.update(t for t in (route.body, route.query) if t is not None)
        types.update(t for t in route.answers.values() if isinstance(t, type))
        for answer in route.answers.values():
            if isinstance(answer, Events):
                types.update(answer.kinds.values())
    ordered = sorted(types, key=lambda t: t.__name__)
    _, components = msgspec.json.schema_components(ordered, schema_hook=_hook, ref_template=REF)
    # Rules between fields that a type cannot carry but a schema can.
    components["TaskSpec"]["allOf"] = [
        {"not": {"required": ["delay", "run_at"]}},
        {"not": {"required": ["ttl", "expires_at"]}},
    ]
    components["PauseBody"]["properties"]["selector"]["minProperties"] = 1
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    for route in routes:  # query structs are parameters, not bodies: no component
        if route.query is not None:
            components.pop(route.query.__name__, None)
    document = {
        "openapi": "3.1.0",
        "info": {"title": "Sluice", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
    filled: dict[str, Any] = _fill_limits(document, settings)
    return filled


def _ref(t: type) -> dict[str, str]:
    return {"$ref": REF.format(name=t.__name__)}


def _operation(route: Route, components: dict[str, Any]) -> dict[str, Any]:
    params = [_path_parameter(route.path, name) for name in route.params]
    if route.query is not None:
        schema = components[route.query.__name__]
        params += [
            {"name": name, "in": "query", "required": False, "schema": prop}
            for name, prop in schema["properties"].items()
        ]
    op: dict[str, Any] = {
        "operationId": route.operation,
        "summary": route.summary,
        "tags": list(route.tags),
        "parameters": params,
        "responses": {str(status): _response(t) for status, t in route.answers.items()},
    }
    for status in route.answers:
        links = LINKS.get((route.operation, status))
        if links:
            op["responses"][str(status)]["links"] = {
                name: {"operationId": target, "parameters": parameters}
                for name, (target, parameters) in links.items()
            }
    errors = dict(ERRORS) if route.access is not Access.ANYONE else {}
    if route.access is Access.ADMIN:
        errors.pop(401)  # admin routes answer 404 to any other key
    for status, description in {**errors, **route.errors}.items():
        op["responses"][str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": _ref(ErrorResponse)}},
        }
    if route.access is Access.ANYONE:
        op["security"] = []  # liveness probes carry no key
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
    return op


def _event(name: str, data: type) -> dict[str, Any]:
    """One kind of server-sent event: its name, and its data as JSON of a type."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "const": name},
            "id": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _ref(data),
            },
        },
    }


def _response(t: type | str | Events | None) -> dict[str, Any]:
    if t is None:
        return {"description": "No content"}
    if isinstance(t, Events):  # each event's fields, its data as JSON
        kinds = [_event(name, data) for name, data in t.kinds.items()]
        schema = kinds[0] if len(kinds) == 1 else {"oneOf": kinds}
        return {"description": "OK", "content": {"text/event-stream": {"schema": schema}}}
    if isinstance(t, str):
        return {"description": "OK", "content": {t: {"schema": {"type": "string"}}}}
    return {"description": "OK", "content": {"application/json": {"schema": _ref(t)}}}


def _path_parameter(path: str, name: str) -> dict[str, Any]:
    pattern = PATH_PARAMETERS.get(name)
    if name == "name":
        pattern = next(
            (p for prefix, p in NAME_PARAMETER.items() if path.startswith(prefix)), NAME.pattern
        )
    schema = {"type": "string"} if pattern is None else {"type": "string", "pattern": pattern}
    return {"name": name, "in": "path", "required": True, "schema": schema}
