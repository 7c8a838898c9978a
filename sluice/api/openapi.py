"""The OpenAPI 3.1 document, built from the request and response Structs.

Request bodies are decoded by hand (raw JSON arguments pass through undecoded), so the
document is assembled here from the same Structs rather than inferred by the framework.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from ..config import Settings
from ..engine.admission import TaskSpec
from ..model import (
    FUNCTION_NAME,
    NAME,
    STATES,
    FunctionConfig,
    ScheduleSpec,
    SubscriptionSpec,
    TenantQuota,
)
from ..selector import PauseBody, SelectorBody
from ..store import DeadSelector
from .errors import ErrorResponse
from .schemas import (
    AuditPage,
    BatchRequest,
    BatchView,
    BulkCount,
    DeadPage,
    EventBody,
    EventView,
    FunctionList,
    FunctionSettings,
    FunctionView,
    Health,
    KeyList,
    NewKey,
    PauseList,
    PauseView,
    ReleasedCount,
    RetryCount,
    ScheduleList,
    ScheduleView,
    StateChange,
    SubmitView,
    SubscriptionList,
    SubscriptionView,
    TaskPage,
    TaskView,
    TenantCreate,
    TenantList,
    TenantView,
)

REF = "#/components/schemas/{name}"

# (method, path, operation id, summary, request body, {status: response body}, query params)
Operation = tuple[
    str, str, str, str, type | None, dict[int, type | str | None], list[dict[str, Any]]
]
OPERATIONS: list[Operation] = [
    ("post", "/v1/tasks", "submitTask", "Submit a task", TaskSpec,
     {201: SubmitView, 200: SubmitView}, []),
    ("post", "/v1/tasks/batch", "submitBatch", "Submit up to 1,000 tasks in one commit",
     BatchRequest, {201: BatchView}, []),
    ("get", "/v1/tasks", "listTasks", "List and search tasks by selector, newest first", None,
     {200: TaskPage},
     [{"name": n, "in": "query", "required": False, "schema": s} for n, s in (
         ("function", {"type": "array", "maxItems": 100,
                       "items": {"type": "string", "pattern": FUNCTION_NAME.pattern}}),
         ("state", {"type": "array", "maxItems": 100,
                    "items": {"type": "string", "enum": list(STATES)}}),
         ("tag", {"type": "array", "maxItems": 100,
                  "items": {"type": "string", "minLength": 1, "maxLength": 256}}),
         ("priority_min", {"type": "integer", "minimum": 0, "maximum": 9}),
         ("priority_max", {"type": "integer", "minimum": 0, "maximum": 9}),
         ("created_after", {"type": "number"}), ("created_before", {"type": "number"}),
         ("key", {"type": "string", "minLength": 1, "maxLength": 256}),
         ("cursor", {"type": "string"}),
         ("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}))]),
    ("get", "/v1/tasks/{task_id}/events", "taskEvents",
     "Server-sent events (event: state, data: StateChange) until the task ends", None,
     {200: "text/event-stream"}, []),
    ("delete", "/v1/tasks/{task_id}", "deleteTask", "Delete a task that is not running", None,
     {204: None}, []),
    ("post", "/v1/tasks/cancel", "cancelTasks", "Cancel every task a selector matches",
     SelectorBody, {200: BulkCount}, []),
    ("post", "/v1/tasks/delete", "deleteTasks",
     "Delete every task a selector matches (running ones are skipped)", SelectorBody,
     {200: BulkCount}, []),
    ("post", "/v1/tasks/retry", "retryTasks", "Retry every dead task a selector matches",
     SelectorBody, {200: BulkCount}, []),
    ("get", "/v1/tasks/{task_id}", "getTask", "A task with its timeline and attempts", None,
     {200: TaskView}, []),
    ("get", "/v1/tasks/{task_id}/result", "waitResult",
     "Wait until the task ends (long-poll), or until timeout", None, {200: TaskView},
     [{"name": "timeout", "in": "query", "required": False,
       "schema": {"type": "number", "minimum": 0, "x-limit": "max_wait_s", "default": 30}}]),
    ("post", "/v1/tasks/{task_id}/cancel", "cancelTask",
     "Cancel a task that has not ended (a running one is stopped)", None, {200: TaskView}, []),
    ("post", "/v1/tasks/{task_id}/retry", "retryTask",
     "Run a dead task again (a new attempt series; history kept)", None, {200: TaskView}, []),
    ("get", "/v1/dead", "listDead", "Dead tasks, oldest first, a page at a time", None,
     {200: DeadPage},
     [{"name": n, "in": "query", "required": False, "schema": s} for n, s in (
         ("function", {"type": "string", "pattern": FUNCTION_NAME.pattern}),
         ("since", {"type": "number"}),
         ("until", {"type": "number"}), ("after", {"type": "string"}),
         ("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}))]),
    ("post", "/v1/dead/retry", "retryDead", "Retry every dead task a selector matches",
     DeadSelector, {200: RetryCount}, []),
    ("put", "/v1/functions/{name}", "putFunction", "Create or update a function's config",
     FunctionSettings, {200: FunctionConfig}, []),
    ("get", "/v1/functions/{name}", "getFunction",
     "One function's config, and an HTTP target's concurrency limit", None,
     {200: FunctionView}, []),
    ("get", "/v1/functions", "listFunctions", "The tenant's functions, by name", None,
     {200: FunctionList},
     [{"name": "after", "in": "query", "required": False,
       "schema": {"type": "string", "pattern": FUNCTION_NAME.pattern}},
      {"name": "limit", "in": "query", "required": False,
       "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000}}]),
    ("post", "/v1/tenants", "createTenant", "Create a tenant and its first API key (admin key)",
     TenantCreate, {201: TenantView}, []),
    ("get", "/v1/tenants", "listTenants", "Every tenant (admin key)", None, {200: TenantList}, []),
    ("post", "/v1/tenants/{tenant_id}/keys", "createKey",
     "A new API key for a tenant, shown once (admin key)", None, {201: NewKey}, []),
    ("get", "/v1/tenants/{tenant_id}/keys", "listKeys",
     "A tenant's API keys, without the keys (admin key)", None, {200: KeyList}, []),
    ("delete", "/v1/tenants/{tenant_id}/keys/{key_id}", "revokeKey",
     "Revoke an API key; it stops working at once (admin key)", None, {204: None}, []),
    ("put", "/v1/schedules/{name}", "putSchedule",
     "Create or replace a cron schedule (a replaced one keeps its firing state)",
     ScheduleSpec, {200: ScheduleView}, []),
    ("get", "/v1/schedules", "listSchedules", "The tenant's cron schedules", None,
     {200: ScheduleList}, []),
    ("get", "/v1/schedules/{name}", "getSchedule", "One cron schedule", None,
     {200: ScheduleView}, []),
    ("delete", "/v1/schedules/{name}", "deleteSchedule", "Delete a cron schedule", None,
     {204: None}, []),
    ("post", "/v1/schedules/{name}/pause", "pauseSchedule", "Pause a cron schedule", None,
     {200: ScheduleView}, []),
    ("post", "/v1/schedules/{name}/resume", "resumeSchedule",
     "Resume a cron schedule from now (missed fires are not run)", None,
     {200: ScheduleView}, []),
    ("post", "/v1/pauses", "createPause",
     "Pause the waiting tasks a selector (function, tags, priority) matches, and new ones",
     PauseBody, {201: PauseView}, []),
    ("get", "/v1/pauses", "listPauses", "The tenant's pauses", None, {200: PauseList}, []),
    ("delete", "/v1/pauses/{pause_id}", "deletePause",
     "Lift a pause (resume): its held tasks go back in their fair order", None,
     {200: ReleasedCount}, []),
    ("put", "/v1/subscriptions/{name}", "putSubscription",
     "Subscribe a function to a topic (with an optional filter on the event's fields)",
     SubscriptionSpec, {200: SubscriptionView}, []),
    ("get", "/v1/subscriptions", "listSubscriptions", "The tenant's event subscriptions",
     None, {200: SubscriptionList}, []),
    ("delete", "/v1/subscriptions/{name}", "deleteSubscription", "Delete a subscription",
     None, {204: None}, []),
    ("post", "/v1/events/{topic}", "postEvent",
     "Post an event (a JSON object; its `id` deduplicates): one task per matching subscription",
     EventBody, {200: EventView}, []),
    ("put", "/v1/tenants/{tenant_id}/quota", "putQuota",
     "Set a tenant's quotas: most waiting tasks, largest payload (admin key)", TenantQuota,
     {200: TenantQuota}, []),
    ("get", "/v1/tenants/{tenant_id}/quota", "getQuota", "A tenant's quotas (admin key)", None,
     {200: TenantQuota}, []),
    ("get", "/v1/audit", "listAudit",
     "Administrative and bulk actions, newest first (a tenant's own; the admin key: all)",
     None, {200: AuditPage},
     [{"name": n, "in": "query", "required": False, "schema": sch} for n, sch in (
         ("tenant_id", {"type": "string", "pattern": "^[0-9a-f]{32}$"}),
         ("action", {"type": "string", "pattern": "^[a-z]+\\.[a-z]+$"}),
         ("before", {"type": "string"}),
         ("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}))]),
    ("get", "/v1/health", "health", "Liveness and connected workers", None, {200: Health}, []),
]  # fmt: skip

ERRORS = {
    400: "The request breaks this document (the error's field says where)",
    401: "Missing or unknown API key",
    404: "Not found",
    409: "Conflict with the task's state",
    413: "Payload or batch too large",
    422: "Well-formed, but a rule this document cannot state refuses it (the code says "
    "which: a cron expression that never fires, priority_min above priority_max, ...)",
    429: "A tenant quota or limit refuses it for now (see Retry-After)",
    503: "Not accepting work right now (see Retry-After)",
}
# Responses only some operations give.
EXTRA_ERRORS = {
    "putFunction": {403: "The target's address is one the server does not call"},
}

UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
HEX = "^[0-9a-f]{16}$"
# Path parameters: what each may be, so a generated client refuses nonsense up front.
PATH_PARAMETERS = {
    "task_id": UUID,
    "tenant_id": "^[0-9a-f]{32}$",
    "key_id": HEX,
    "pause_id": HEX,
    "topic": NAME.pattern,
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


def build_openapi(version: str, settings: Settings) -> dict[str, Any]:
    types: set[type] = {ErrorResponse, StateChange}
    for _m, _p, _o, _s, body, responses, _q in OPERATIONS:
        if body is not None:
            types.add(body)
        types.update(t for t in responses.values() if isinstance(t, type))
    ordered = sorted(types, key=lambda t: t.__name__)
    _, components = msgspec.json.schema_components(ordered, schema_hook=_hook, ref_template=REF)
    # Rules between fields that a type cannot carry but a schema can.
    components["TaskSpec"]["allOf"] = [
        {"not": {"required": ["delay", "run_at"]}},
        {"not": {"required": ["ttl", "expires_at"]}},
    ]
    components["PauseBody"]["properties"]["selector"]["minProperties"] = 1

    def ref(t: type) -> dict[str, str]:
        return {"$ref": REF.format(name=t.__name__)}

    def _response(t: type | str | None) -> dict[str, Any]:
        if t is None:
            return {"description": "No content"}
        if isinstance(t, str):  # server-sent events: each event's fields, data as JSON
            event = {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "event": {"type": "string", "const": "state"},
                    "id": {"type": "string"},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": ref(StateChange),
                    },
                },
            }
            return {"description": "OK", "content": {t: {"schema": event}}}
        return {"description": "OK", "content": {"application/json": {"schema": ref(t)}}}

    def _path_parameter(path: str, name: str) -> dict[str, Any]:
        pattern = PATH_PARAMETERS.get(name)
        if name == "name":
            pattern = next(
                (p for prefix, p in NAME_PARAMETER.items() if path.startswith(prefix)),
                NAME.pattern,
            )
        schema = {"type": "string"} if pattern is None else {"type": "string", "pattern": pattern}
        return {"name": name, "in": "path", "required": True, "schema": schema}

    paths: dict[str, dict[str, Any]] = {}
    for method, path, op_id, summary, body, responses, query in OPERATIONS:
        params = copy.deepcopy(query)
        for name in ("key_id", "tenant_id", "task_id", "name", "pause_id", "topic"):
            if "{" + name + "}" in path:
                params.insert(0, _path_parameter(path, name))
        op: dict[str, Any] = {
            "operationId": op_id,
            "summary": summary,
            "parameters": params,
            "responses": {str(status): _response(t) for status, t in responses.items()},
        }
        for status in responses:
            links = LINKS.get((op_id, status))
            if links:
                op["responses"][str(status)]["links"] = {
                    name: {"operationId": target, "parameters": parameters}
                    for name, (target, parameters) in links.items()
                }
        for status, description in {**ERRORS, **EXTRA_ERRORS.get(op_id, {})}.items():
            op["responses"][str(status)] = {
                "description": description,
                "content": {"application/json": {"schema": ref(ErrorResponse)}},
            }
        if path == "/v1/health":
            op["security"] = []  # liveness probes carry no key
        if body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(body)}},
            }
        paths.setdefault(path, {})[method] = op
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
