"""The server's spans, when `Settings.tracing` is on (OBSERVABILITY §3.3): for each task
that carries a creation context, a synthetic `wait {function}` span from when it became
ready to its dispatch (explicit timestamps), a `dispatch {function}` span from the claim
to the delivery, and for HTTP targets a `process {function}` CLIENT span around each
POST, whose context is the `traceparent` the endpoint receives.

node.py imports this module only when tracing is on, so it may import OpenTelemetry at
the top. Tasks without a creation context get no spans: the server starts no traces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from ..model import ClaimedTask
from ..otel import SYSTEM, extract, inject, parent_and_links

NS = 1_000_000_000


def _attributes(task: ClaimedTask, operation: str) -> dict[str, str | int | bool]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.name": operation,
        "messaging.destination.name": task.function,
        "messaging.message.id": task.id,
        "sluice.task.name": task.function,
        "sluice.task.attempt": task.attempt,
        "sluice.tenant.id": task.tenant_id,
        "sluice.priority": task.priority,
    }


class ServerSpans:
    def __init__(self, provider: TracerProvider | None) -> None:
        self._tracer = trace.get_tracer("sluice.server", tracer_provider=provider)

    def dispatched(self, tasks: list[ClaimedTask], now: float) -> None:
        """Record the wait and dispatch spans of tasks being delivered now."""
        for task in tasks:
            created = extract(task.trace_parent, task.trace_state)
            if created is None:
                continue
            parent, links = parent_and_links(created, task.id, now)
            ready = task.ready_at if task.ready_at is not None else task.dispatched_at
            wait = self._tracer.start_span(
                f"wait {task.function}", context=parent, links=links,
                attributes={**_attributes(task, "wait"), "sluice.synthetic": True},
                start_time=int(min(ready, task.dispatched_at) * NS),
            )  # fmt: skip
            wait.end(end_time=int(task.dispatched_at * NS))
            dispatch = self._tracer.start_span(
                f"dispatch {task.function}", context=parent, links=links,
                attributes=_attributes(task, "dispatch"),
                start_time=int(task.dispatched_at * NS),
            )  # fmt: skip
            dispatch.end(end_time=int(max(now, task.dispatched_at) * NS))

    @contextlib.contextmanager
    def call(self, task: ClaimedTask, now: float) -> Iterator[tuple[Span, dict[str, str]]]:
        """The span of one POST to an HTTP target, and the trace headers to send with it."""
        created = extract(task.trace_parent, task.trace_state)
        parent, links = parent_and_links(created, task.id, now)
        attributes = {**_attributes(task, "process"), "http.request.method": "POST"}
        with self._tracer.start_as_current_span(
            f"process {task.function}", context=parent, kind=SpanKind.CLIENT, links=links,
            attributes=attributes,
        ) as span:  # fmt: skip
            yield span, inject()

    @staticmethod
    def answered(span: Span, outcome: str, error_type: str | None, error: str | None) -> None:
        span.set_attribute("sluice.outcome", outcome)
        if outcome != "ok":
            span.set_attribute("error.type", error_type or outcome)
            span.set_status(Status(StatusCode.ERROR, (error or outcome)[:256]))
