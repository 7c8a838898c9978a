"""Submits, the hot path: `POST /v1/tasks` and `POST /v1/tasks/batch`.

A profile under 32 concurrent producers showed the framework's routing, parameter and
response machinery taking more server time than the submit itself, so the front door
(api/door.py) answers these two straight from the ASGI scope with `answer`; the route
table declares them like every route (their handlers below serve the same call if the
framework ever routes one), so they are documented and listed alike.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..config import Settings
from ..contract import BatchOutcome, BatchRequest, SubmitOutcome, TaskSpec
from ..engine.node import Node
from ..errors import InvalidRequest, PayloadTooLarge
from ..tracing import MAX_TRACESTATE_BYTES, valid_traceparent
from .route import Call, decode, decoder
from .views import submit_view

BODY_OVERHEAD = 64 * 1024  # room for the envelope beyond the payload limit
_encoder = msgspec.json.Encoder()
_spec = decoder(TaskSpec)
_batch = decoder(BatchRequest)


def one_bytes(settings: Settings) -> int:
    return settings.max_payload_bytes + BODY_OVERHEAD


def batch_bytes(settings: Settings) -> int:
    return settings.max_batch_bytes


async def submit_one(node: Node, tenant_id: str, spec: TaskSpec) -> tuple[int, SubmitOutcome]:
    # A task leased to an idle slot at its commit (direct dispatch) has been written to
    # its worker's socket by now (WorkerConn.send writes at once), before this answer:
    # the worker, not the producer, gets the free core first.
    (result,) = await node.intake.submit(tenant_id, [spec])
    return (201 if result.created else 200), submit_view(result)


async def submit_batch(node: Node, tenant_id: str, batch: BatchRequest) -> tuple[int, BatchOutcome]:
    settings = node.settings
    if len(batch.tasks) > settings.max_batch:
        raise PayloadTooLarge(
            f"a batch holds at most {settings.max_batch} tasks", code="batch_too_large",
            field="tasks",
        )  # fmt: skip
    results = await node.intake.submit(tenant_id, batch.tasks)
    return 201, BatchOutcome([submit_view(r) for r in results])


async def one(call: Call) -> tuple[int, SubmitOutcome]:
    return await submit_one(call.node, call.tenant, call.body)


async def many(call: Call) -> tuple[int, BatchOutcome]:
    return await submit_batch(call.node, call.tenant, call.body)


async def answer(
    node: Node, tenant_id: str, path: str, receive: Any, headers: Any = ()
) -> tuple[int, bytes]:
    """The front door's fast path: read, decode and submit, encode the answer."""
    settings = node.settings
    if path == "/v1/tasks":
        spec = decode(_spec, await read_body(receive, one_bytes(settings)))
        if spec.traceparent is None:
            spec = with_trace_headers(spec, headers)
        status, outcome = await submit_one(node, tenant_id, spec)
        return status, _encoder.encode(outcome)
    batch = decode(_batch, await read_body(receive, batch_bytes(settings)))
    status, outcomes = await submit_batch(node, tenant_id, batch)
    return status, _encoder.encode(outcomes)


def with_trace_headers(spec: TaskSpec, headers: Any) -> TaskSpec:
    """A single submit with no `traceparent` in its body takes the request's W3C trace
    headers as its creation context. A malformed header is dropped, as propagators do
    (the body's fields, being the API's own, are refused instead)."""
    parent = state = None
    for name, value in headers:  # ASGI: lower-case names, as bytes
        if name == b"traceparent":
            parent = value.decode("latin-1")
        elif name == b"tracestate":
            state = value.decode("latin-1")
    if parent is None or not valid_traceparent(parent):
        return spec
    if state is not None and not (
        len(state) <= MAX_TRACESTATE_BYTES and state.isascii() and state.isprintable()
    ):
        state = None
    return msgspec.structs.replace(spec, traceparent=parent, tracestate=state or None)


async def read_body(receive: Any, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("the client went away before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
