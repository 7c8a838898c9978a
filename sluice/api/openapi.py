"""The OpenAPI 3.1 document, built from the request and response Structs.

Request bodies are decoded by hand (raw JSON arguments pass through undecoded), so the
document is assembled here from the same Structs rather than inferred by the framework.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..model import STATES, FunctionConfig, SubscriptionSpec, TenantQuota
from ..selector import SelectorBody
from ..store import DeadSelector
from .errors import ErrorResponse
from .schemas import (
    BatchRequestDoc,
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
    ScheduleSpecDoc,
    ScheduleView,
    StateChange,
    SubmitView,
    SubscriptionList,
    SubscriptionView,
    TaskPage,
    TaskSpecDoc,
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
    ("post", "/v1/tasks", "submitTask", "Submit a task", TaskSpecDoc,
     {201: SubmitView, 200: SubmitView}, []),
    ("post", "/v1/tasks/batch", "submitBatch", "Submit up to 1,000 tasks in one commit",
     BatchRequestDoc, {201: BatchView}, []),
    ("get", "/v1/tasks", "listTasks", "List and search tasks by selector, newest first", None,
     {200: TaskPage},
     [{"name": n, "in": "query", "required": False, "schema": s} for n, s in (
         ("function", {"type": "array", "items": {"type": "string"}}),
         ("state", {"type": "array", "items": {"type": "string", "enum": list(STATES)}}),
         ("tag", {"type": "array", "items": {"type": "string"}}),
         ("priority_min", {"type": "integer", "minimum": 0, "maximum": 9}),
         ("priority_max", {"type": "integer", "minimum": 0, "maximum": 9}),
         ("created_after", {"type": "number"}), ("created_before", {"type": "number"}),
         ("key", {"type": "string"}), ("cursor", {"type": "string"}),
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
       "schema": {"type": "number", "minimum": 0, "maximum": 60, "default": 30}}]),
    ("post", "/v1/tasks/{task_id}/cancel", "cancelTask",
     "Cancel a task that has not ended (a running one is stopped)", None, {200: TaskView}, []),
    ("post", "/v1/tasks/{task_id}/retry", "retryTask",
     "Run a dead task again (a new attempt series; history kept)", None, {200: TaskView}, []),
    ("get", "/v1/dead", "listDead", "Dead tasks, oldest first, a page at a time", None,
     {200: DeadPage},
     [{"name": n, "in": "query", "required": False, "schema": s} for n, s in (
         ("function", {"type": "string"}), ("since", {"type": "number"}),
         ("until", {"type": "number"}), ("after", {"type": "string"}),
         ("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}))]),
    ("post", "/v1/dead/retry", "retryDead", "Retry every dead task a selector matches",
     DeadSelector, {200: RetryCount}, []),
    ("put", "/v1/functions/{name}", "putFunction", "Create or update a function's config",
     FunctionSettings, {200: FunctionConfig}, []),
    ("get", "/v1/functions/{name}", "getFunction",
     "One function's config, and an HTTP target's concurrency limit", None,
     {200: FunctionView}, []),
    ("get", "/v1/functions", "listFunctions", "The tenant's functions", None,
     {200: FunctionList}, []),
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
     ScheduleSpecDoc, {200: ScheduleView}, []),
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
     SelectorBody, {201: PauseView}, []),
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
    ("get", "/v1/health", "health", "Liveness and connected workers", None, {200: Health}, []),
]  # fmt: skip

ERRORS = {
    400: "Invalid request",
    401: "Missing or unknown API key",
    404: "Not found",
    409: "Conflict with the task's state",
    429: "A tenant quota refuses it for now (see Retry-After)",
    413: "Payload or batch too large",
    503: "Not accepting work right now (see Retry-After)",
}


def _hook(t: Any) -> dict[str, Any]:
    if t is msgspec.Raw:
        return {}
    raise NotImplementedError


def build_openapi(version: str) -> dict[str, Any]:
    types: set[type] = {ErrorResponse, StateChange}
    for _m, _p, _o, _s, body, responses, _q in OPERATIONS:
        if body is not None:
            types.add(body)
        types.update(t for t in responses.values() if isinstance(t, type))
    ordered = sorted(types, key=lambda t: t.__name__)
    _, components = msgspec.json.schema_components(ordered, schema_hook=_hook, ref_template=REF)

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

    paths: dict[str, dict[str, Any]] = {}
    for method, path, op_id, summary, body, responses, query in OPERATIONS:
        params = list(query)
        for name in ("key_id", "tenant_id", "task_id", "name", "pause_id", "topic"):
            if "{" + name + "}" in path:
                params.insert(0, {"name": name, "in": "path", "required": True,
                                  "schema": {"type": "string"}})  # fmt: skip
        op: dict[str, Any] = {
            "operationId": op_id,
            "summary": summary,
            "parameters": params,
            "responses": {str(status): _response(t) for status, t in responses.items()},
        }
        for status, description in ERRORS.items():
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
    return {
        "openapi": "3.1.0",
        "info": {"title": "Sluice", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
    }
