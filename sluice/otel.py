"""OpenTelemetry helpers shared by the SDK's, the server's and the worker's spans.

Imported only where tracing is on (sluice/tracing.py says when), so this module may
import OpenTelemetry at the top; nothing imports it at start-up.
"""

from __future__ import annotations

from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .tracing import as_child

SYSTEM: Final = "sluice"
_propagator = TraceContextTextMapPropagator()


def extract(traceparent: str | None, tracestate: str | None) -> SpanContext | None:
    """The stored creation context as a remote span context; None if there is none."""
    if traceparent is None:
        return None
    headers = {"traceparent": traceparent}
    if tracestate:
        headers["tracestate"] = tracestate
    found = trace.get_current_span(_propagator.extract(headers)).get_span_context()
    return found if found.is_valid else None


def parent_and_links(
    created: SpanContext | None, task_id: str, now: float
) -> tuple[Context, list[Link]]:
    """Where an attempt's span goes (the mode rule, sluice/tracing.py `as_child`): under
    the creation context while the task is young, else a new root; linked to it always."""
    if created is None:
        return Context(), []
    links = [Link(created)]
    if as_child(task_id, now):
        return trace.set_span_in_context(trace.NonRecordingSpan(created), Context()), links
    return Context(), links


def inject(context: Context | None = None) -> dict[str, str]:
    """traceparent (and tracestate) headers of `context` (the current one when None)."""
    headers: dict[str, str] = {}
    _propagator.inject(headers, context=context)
    return headers
