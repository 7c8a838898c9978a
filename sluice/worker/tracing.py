"""The worker's spans: one `process {function}` CONSUMER span per attempt, around the
handler (OBSERVABILITY §3.3). Imported by the runtime only when tracing is on, so this
module may import OpenTelemetry at the top.

The span is a child of the task's creation context (the submitter's trace) and links to
it, as Celery and Temporal nest theirs and as the messaging conventions ask; a task older
than an hour starts a new trace, with the link. The handler runs inside the span, so its
own spans (HTTP calls, queries) nest under its attempt: an async handler runs in this
task's context, a sync one in a copy of it (runtime.py's `_call_in_thread`). A retry is a
new attempt, so a new span in the same trace, beside the first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from ..otel import SYSTEM, extract, parent_and_links
from ..protocol import ResultItem, TaskFrame
from ..tracing import split_carrier


class AttemptSpans:
    """Makes the attempt spans of one worker."""

    def __init__(self, provider: TracerProvider | None, worker_id: str) -> None:
        self._tracer = trace.get_tracer("sluice.worker", tracer_provider=provider)
        self._worker_id = worker_id

    async def run(self, frame: TaskFrame, call: Awaitable[ResultItem]) -> ResultItem:
        """Await `call` (the attempt) inside its span; the span's status is the outcome's."""
        carried = split_carrier(frame.trace)
        created = None if carried is None else extract(*carried)
        parent, links = parent_and_links(created, frame.id, time.time())
        attributes: dict[str, str | int] = {
            "messaging.system": SYSTEM,
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": frame.function,
            "messaging.message.id": frame.id,
            "messaging.client.id": self._worker_id,
            "sluice.task.name": frame.function,
            "sluice.task.attempt": frame.attempt,
        }
        with self._tracer.start_as_current_span(
            f"process {frame.function}", context=parent,
            kind=SpanKind.CONSUMER, links=links, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            try:
                item = await call
            except asyncio.CancelledError:  # cancelled, or cut by a drain: no result
                span.set_attribute("error.type", "cancelled")
                span.set_status(Status(StatusCode.ERROR, "cancelled"))
                raise
            span.set_attribute("sluice.outcome", item.outcome)
            if item.outcome != "ok":
                error = item.error_type or item.outcome
                span.set_attribute("error.type", error)
                span.set_attribute("sluice.error.class", item.outcome)
                span.set_status(Status(StatusCode.ERROR, (item.error_message or error)[:256]))
            return item
