"""The SDK's span at submit: `send {function}` (PRODUCER), whose context each task stores
as its creation context (OBSERVABILITY §3.3). Imported by the clients only when tracing
is on (this process imported OpenTelemetry, or a client was handed a tracer provider),
so this module may import OpenTelemetry at the top.

Only a submit made inside a trace (a valid current span) is traced: the send span is a
child of the caller's span, and the worker's attempts become children of the send span,
so the caller's trace holds the whole life of the task. A spec that already carries a
`traceparent` keeps it (a creation context the caller chose); no span is made for it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from ..contract import SubmitOutcome
from ..otel import SYSTEM, inject


class Send:
    """One traced submit: the specs to send (with the creation context) and its span."""

    def __init__(self, specs: list[dict[str, Any]], span: Span | None) -> None:
        self.specs = specs
        self._span = span

    def sent(self, outcomes: list[SubmitOutcome]) -> None:
        if self._span is not None and len(outcomes) == 1:
            self._span.set_attribute("messaging.message.id", outcomes[0].id)


@functools.lru_cache(maxsize=8)
def _tracer(provider: TracerProvider | None) -> Tracer:
    """A tracer per provider (None: the global one), made once: making one costs about
    as much as a span."""
    return trace.get_tracer("sluice.client", tracer_provider=provider)


@contextlib.contextmanager
def sending(provider: TracerProvider | None, specs: list[dict[str, Any]]) -> Iterator[Send]:
    """The span around a submit of `specs`, if the caller is inside a trace."""
    untraced = [s for s in specs if "traceparent" not in s]
    if not untraced or not trace.get_current_span().get_span_context().is_valid:
        yield Send(specs, None)
        return
    functions = {str(s.get("function")) for s in untraced}
    destination = functions.pop() if len(functions) == 1 else "batch"
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": destination,
    }
    if len(specs) > 1:
        attributes["messaging.batch.message_count"] = len(specs)
    with _tracer(provider).start_as_current_span(
        f"send {destination}", kind=SpanKind.PRODUCER, attributes=attributes,
        record_exception=True, set_status_on_exception=False,
    ) as span:  # fmt: skip
        context = inject()
        traced = [s if "traceparent" in s else {**s, **context} for s in specs]
        try:
            yield Send(traced, span)
        except Exception as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)[:256]))
            raise
