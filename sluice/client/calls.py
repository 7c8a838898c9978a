"""What each API call sends and how its answer is read, shared by the sync and async clients.

A `_Call` is sans-I/O: a request to send and a function that reads the answer. The
clients only move bytes (`Client` over httpx, `AsyncClient` over aiohttp) and retry on
429/503; everything else lives here, once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from ..contract import (
    ApiKey,
    BatchOutcome,
    BulkCount,
    DeadPage,
    DeadTask,
    Delivery,
    DeliveryList,
    ErrorResponse,
    Function,
    FunctionConfig,
    FunctionList,
    KeyList,
    LogPage,
    NewKey,
    NewTenant,
    Pause,
    PauseList,
    ReleasedCount,
    RetryCount,
    Schedule,
    ScheduleList,
    SigningSecret,
    Stats,
    SubmitOutcome,
    Task,
    TaskPage,
    TaskSummary,
    Tenant,
    TenantList,
    Waiting,
    WebhookReceiver,
    WebhookReceiverList,
)
from ..errors import RemoteError

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 (an item of a page)

MAX_RETRIES = 5
MAX_RETRY_AFTER_S = 60.0
BATCH_COUNT = 1000  # the server's default SLUICE_MAX_BATCH
BATCH_BYTES = 16 * 1024 * 1024  # the server's default SLUICE_MAX_BATCH_BYTES
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

_encoder = msgspec.json.Encoder()
_LIST_FIELDS = {"function": "function", "state": "state", "tags": "tag"}
SELECTOR_FIELDS = (
    "function", "state", "tags", "priority_min", "priority_max",
    "created_after", "created_before", "key",
)  # fmt: skip
PAUSE_FIELDS = ("function", "tags", "priority_min", "priority_max")
LOG_FILTERS = ("attempt", "level", "q", "limit")
FOLLOW_WAIT_S = 10.0  # each long-poll of a followed task's lines


class _Response(msgspec.Struct, frozen=True):
    """What both transports hand back: enough to parse an answer or decide a retry."""

    status_code: int
    retry_after: str | None
    content: bytes


class _Request(msgspec.Struct, frozen=True):
    method: str
    path: str
    body: bytes | None = None
    params: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class _Call(Generic[T]):
    request: _Request
    read: Callable[[_Response], T]


@dataclass(frozen=True)
class _Pager(Generic[I]):
    """A paged list: the request for a cursor, and how to read a page and the next cursor."""

    request: Callable[[str], _Request]
    read: Callable[[_Response], tuple[list[I], str | None]]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


def _check_selector(selector: Mapping[str, Any]) -> None:
    unknown = sorted(set(selector) - set(SELECTOR_FIELDS))
    if unknown:
        raise TypeError(f"unknown selector field(s) {unknown}; selectors take {SELECTOR_FIELDS}")


def selector_params(selector: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A selector as query parameters (`GET /v1/tasks`); list fields repeat."""
    _check_selector(selector)
    params: list[tuple[str, str]] = []
    for name, value in selector.items():
        if value is None:
            continue
        if name in _LIST_FIELDS:
            params += [(_LIST_FIELDS[name], str(v)) for v in _as_list(value)]
        else:
            params.append((name, str(value)))
    return params


def selector_body(selector: Mapping[str, Any]) -> dict[str, Any]:
    """A selector as the JSON body of a bulk verb."""
    _check_selector(selector)
    return {
        name: (_as_list(value) if name in _LIST_FIELDS else value)
        for name, value in selector.items()
        if value is not None
    }


def pause_selector(selector: Mapping[str, Any]) -> dict[str, Any]:
    """A pause's selector as JSON: the fields given, lists from a value or a list. An
    empty one is sent as it is; the server refuses it (`400`, field `selector`)."""
    unknown = sorted(set(selector) - set(PAUSE_FIELDS))
    if unknown:
        raise TypeError(f"unknown pause field(s) {unknown}; pauses select by {PAUSE_FIELDS}")
    return selector_body(selector)


def task_spec(
    function: str, args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any], **options: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"function": function, "args": list(args), "kwargs": dict(kwargs)}
    spec.update({k: v for k, v in options.items() if v is not None})
    return spec


def schedule_spec(spec: Mapping[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """The body of `PUT /v1/schedules/{name}`: the mapping, with the fields given (not
    None) laid over it. Fields left out take the server's defaults."""
    body = dict(spec or {})
    body.update({name: value for name, value in fields.items() if value is not None})
    return body


def batches(specs: list[dict[str, Any]], max_count: int, max_bytes: int) -> list[bytes]:
    """Batch bodies of at most `max_count` tasks and `max_bytes` bytes each, in order.

    A single task larger than `max_bytes` travels alone; the server then refuses it
    with `413 payload_too_large` rather than the client guessing the server's limits.
    """
    if max_count < 1:
        raise ValueError("max_count must be at least 1")
    head, tail = b'{"tasks":[', b"]}"
    bodies: list[bytes] = []
    chunk: list[bytes] = []
    size = len(head) + len(tail)
    for spec in specs:
        encoded = _encoder.encode(spec)
        extra = len(encoded) + (1 if chunk else 0)
        if chunk and (len(chunk) >= max_count or size + extra > max_bytes):
            bodies.append(head + b",".join(chunk) + tail)
            chunk, size = [], len(head) + len(tail)
            extra = len(encoded)
        chunk.append(encoded)
        size += extra
    if chunk:
        bodies.append(head + b",".join(chunk) + tail)
    return bodies


def parse(response: _Response, type: type[T]) -> T:
    if response.status_code >= 400:
        raise _remote_error(response)
    if response.status_code == 204:
        return None  # type: ignore[return-value]
    return msgspec.json.decode(response.content, type=type)


def _reader(type: type[T]) -> Callable[[_Response], T]:
    return lambda response: parse(response, type)


def _remote_error(response: _Response) -> RemoteError:
    try:
        body = msgspec.json.decode(response.content, type=ErrorResponse).error
        return RemoteError(response.status_code, body.code, body.message, body.field)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = response.content[:200].decode(errors="replace")
        return RemoteError(response.status_code, "http_error", text)


def retry_delay(response: _Response, attempt: int, rng: random.Random) -> float | None:
    """Seconds to wait before retrying a 429/503, honouring Retry-After with jitter;
    None when the answer is final."""
    if response.status_code not in (429, 503) or attempt >= MAX_RETRIES:
        return None
    try:
        after = float(response.retry_after or "")
    except ValueError:
        after = min(MAX_RETRY_AFTER_S, 0.5 * 2**attempt)
    after = min(max(after, 0.0), MAX_RETRY_AFTER_S)
    return after + rng.uniform(0, max(0.1, after * 0.5))


def _get(path: str, type: type[T], params: tuple[tuple[str, str], ...] | None = None) -> _Call[T]:
    return _Call(_Request("GET", path, params=params), _reader(type))


def _post(path: str, type: type[T], body: Any = None) -> _Call[T]:
    encoded = None if body is None else _encoder.encode(body)
    return _Call(_Request("POST", path, encoded), _reader(type))


def _delete(path: str) -> _Call[None]:
    return _Call(_Request("DELETE", path), _reader(type(None)))


class _Calls:
    """Every API call the client makes: what it sends, and how its answer is read."""

    @staticmethod
    def submit(spec: dict[str, Any]) -> _Call[SubmitOutcome]:
        return _post("/v1/tasks", SubmitOutcome, spec)

    @staticmethod
    def submit_batch(body: bytes) -> _Call[list[SubmitOutcome]]:
        read = _reader(BatchOutcome)
        return _Call(_Request("POST", "/v1/tasks/batch", body), lambda r: read(r).tasks)

    @staticmethod
    def get(task_id: str) -> _Call[Task]:
        return _get(f"/v1/tasks/{task_id}", Task)

    @staticmethod
    def why(task_id: str) -> _Call[Waiting]:
        return _get(f"/v1/tasks/{task_id}/why", Waiting)

    @staticmethod
    def stats(minutes: int) -> _Call[Stats]:
        return _get("/v1/stats", Stats, (("minutes", str(minutes)),))

    @staticmethod
    def wait(task_id: str, timeout: float) -> _Call[Task]:
        return _get(f"/v1/tasks/{task_id}/result", Task, (("timeout", f"{timeout:g}"),))

    @staticmethod
    def logs(task_id: str, filters: Mapping[str, Any], cursor: str | None, wait: float
             ) -> _Call[LogPage]:  # fmt: skip
        params = [(k, str(v)) for k, v in filters.items() if v is not None]
        unknown = sorted(set(filters) - set(LOG_FILTERS))
        if unknown:
            raise TypeError(f"unknown log filter(s) {unknown}; logs take {LOG_FILTERS}")
        if cursor is not None:
            params.append(("cursor", cursor))
        if wait:
            params.append(("wait", f"{wait:g}"))
        return _get(f"/v1/tasks/{task_id}/logs", LogPage, tuple(params))

    @staticmethod
    def cancel(task_id: str) -> _Call[Task]:
        return _post(f"/v1/tasks/{task_id}/cancel", Task)

    @staticmethod
    def retry(task_id: str) -> _Call[Task]:
        return _post(f"/v1/tasks/{task_id}/retry", Task)

    @staticmethod
    def delete(task_id: str) -> _Call[None]:
        return _delete(f"/v1/tasks/{task_id}")

    @staticmethod
    def bulk(verb: str, selector: Mapping[str, Any]) -> _Call[int]:
        call = _post(f"/v1/tasks/{verb}", BulkCount, {"selector": selector_body(selector)})
        return _Call(call.request, lambda r: call.read(r).count)

    @staticmethod
    def list_tasks(selector: Mapping[str, Any], page_size: int) -> _Pager[TaskSummary]:
        base = [*selector_params(selector), ("limit", str(_page(page_size)))]

        def request(cursor: str) -> _Request:
            params = [*base, ("cursor", cursor)] if cursor else base
            return _Request("GET", "/v1/tasks", params=tuple(params))

        def read(response: _Response) -> tuple[list[TaskSummary], str | None]:
            page = parse(response, TaskPage)
            return page.tasks, page.next

        return _Pager(request, read)

    @staticmethod
    def list_dead(
        function: str | None, since: float | None, until: float | None, page_size: int
    ) -> _Pager[DeadTask]:
        window = _given(function=function, since=since, until=until)
        base = [("limit", str(_page(page_size))), *((k, str(v)) for k, v in window.items())]

        def request(cursor: str) -> _Request:
            params = [*base, ("after", cursor)] if cursor else base
            return _Request("GET", "/v1/dead", params=tuple(params))

        def read(response: _Response) -> tuple[list[DeadTask], str | None]:
            page = parse(response, DeadPage)
            return page.tasks, page.next

        return _Pager(request, read)

    @staticmethod
    def retry_dead(function: str | None, since: float | None, until: float | None) -> _Call[int]:
        body = _given(function=function, since=since, until=until)
        call = _post("/v1/dead/retry", RetryCount, body)
        return _Call(call.request, lambda r: call.read(r).retried)

    @staticmethod
    def list_functions() -> _Pager[FunctionConfig]:
        def request(cursor: str) -> _Request:
            params = (("limit", str(MAX_PAGE_SIZE)),) + ((("after", cursor),) if cursor else ())
            return _Request("GET", "/v1/functions", params=params)

        def read(response: _Response) -> tuple[list[FunctionConfig], str | None]:
            page = parse(response, FunctionList)
            return page.functions, page.next

        return _Pager(request, read)

    @staticmethod
    def get_function(name: str) -> _Call[Function]:
        return _get(f"/v1/functions/{name}", Function)

    @staticmethod
    def put_function(
        name: str, settings: Mapping[str, Any], code: bool = False
    ) -> _Call[FunctionConfig]:
        body = _encoder.encode(dict(settings))
        params = (("source", "code"),) if code else None
        request = _Request("PUT", f"/v1/functions/{name}", body, params=params)
        return _Call(request, _reader(FunctionConfig))

    @staticmethod
    def notifications(task_id: str) -> _Call[list[Delivery]]:
        call = _get(f"/v1/tasks/{task_id}/notifications", DeliveryList)
        return _Call(call.request, lambda r: call.read(r).notifications)

    @staticmethod
    def list_webhooks() -> _Call[list[WebhookReceiver]]:
        call = _get("/v1/webhooks", WebhookReceiverList)
        return _Call(call.request, lambda r: call.read(r).webhooks)

    @staticmethod
    def webhook_secret() -> _Call[SigningSecret]:
        return _get("/v1/webhooks/secret", SigningSecret)

    @staticmethod
    def rotate_webhook_secret() -> _Call[SigningSecret]:
        return _post("/v1/webhooks/secret", SigningSecret)

    @staticmethod
    def enable_webhook(webhook_id: str) -> _Call[WebhookReceiver]:
        request = _Request("POST", f"/v1/webhooks/{quote(webhook_id, safe='')}/enable")
        return _Call(request, _reader(WebhookReceiver))

    @staticmethod
    def reset_function(name: str, field: str) -> _Call[Function]:
        request = _Request("DELETE", f"/v1/functions/{name}/settings/{quote(field, safe='')}")
        return _Call(request, _reader(Function))

    @staticmethod
    def list_schedules() -> _Call[list[Schedule]]:
        call = _get("/v1/schedules", ScheduleList)
        return _Call(call.request, lambda r: call.read(r).schedules)

    @staticmethod
    def get_schedule(name: str) -> _Call[Schedule]:
        return _get(_schedule_path(name), Schedule)

    @staticmethod
    def put_schedule(name: str, spec: Mapping[str, Any]) -> _Call[Schedule]:
        body = _encoder.encode(dict(spec))
        return _Call(_Request("PUT", _schedule_path(name), body), _reader(Schedule))

    @staticmethod
    def pause_schedule(name: str) -> _Call[Schedule]:
        return _post(f"{_schedule_path(name)}/pause", Schedule)

    @staticmethod
    def resume_schedule(name: str) -> _Call[Schedule]:
        return _post(f"{_schedule_path(name)}/resume", Schedule)

    @staticmethod
    def delete_schedule(name: str) -> _Call[None]:
        return _delete(_schedule_path(name))

    @staticmethod
    def create_pause(selector: Mapping[str, Any]) -> _Call[Pause]:
        return _post("/v1/pauses", Pause, {"selector": pause_selector(selector)})

    @staticmethod
    def list_pauses() -> _Call[list[Pause]]:
        call = _get("/v1/pauses", PauseList)
        return _Call(call.request, lambda r: call.read(r).pauses)

    @staticmethod
    def delete_pause(pause_id: str) -> _Call[int]:
        read = _reader(ReleasedCount)
        request = _Request("DELETE", f"/v1/pauses/{quote(pause_id, safe='')}")
        return _Call(request, lambda r: read(r).released)

    @staticmethod
    def list_tenants() -> _Call[list[Tenant]]:
        call = _get("/v1/tenants", TenantList)
        return _Call(call.request, lambda r: call.read(r).tenants)

    @staticmethod
    def create_tenant(name: str) -> _Call[NewTenant]:
        return _post("/v1/tenants", NewTenant, {"name": name})

    @staticmethod
    def list_keys(tenant_id: str) -> _Call[list[ApiKey]]:
        call = _get(f"/v1/tenants/{tenant_id}/keys", KeyList)
        return _Call(call.request, lambda r: call.read(r).keys)

    @staticmethod
    def create_key(tenant_id: str) -> _Call[NewKey]:
        return _post(f"/v1/tenants/{tenant_id}/keys", NewKey)

    @staticmethod
    def revoke_key(tenant_id: str, key_id: str) -> _Call[None]:
        return _delete(f"/v1/tenants/{tenant_id}/keys/{key_id}")


def _schedule_path(name: str) -> str:
    # A schedule's name is the user's own text: a "/" or "?" in it stays in the segment.
    return f"/v1/schedules/{quote(name, safe='')}"


def _given(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _page(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    return page_size
