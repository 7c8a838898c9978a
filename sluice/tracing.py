"""The W3C trace context a task carries (OBSERVABILITY §3.3), without OpenTelemetry.

A task's creation context is its `traceparent` (and optional `tracestate`), stored once
at submit and never changed; the server hands it to the worker in one `trace` string.
Sluice imports OpenTelemetry only where tracing is on: in the SDK and the worker, when
the process already imported it (`otel_loaded`) or was handed a tracer provider; on the
server, when `Settings.tracing` says so. Nothing here imports it.
"""

from __future__ import annotations

import re
import sys
from typing import Final

# version-traceid-parentid-flags, lower-case hex; version ff is invalid (W3C §3.2.2.1).
TRACEPARENT_PATTERN: Final = (
    "^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$"
)
TRACEPARENT_LENGTH: Final = 55
MAX_TRACESTATE_BYTES: Final = 512
_traceparent = re.compile(TRACEPARENT_PATTERN)


def valid_traceparent(value: str | None) -> bool:
    return (
        value is not None
        and len(value) == TRACEPARENT_LENGTH
        and _traceparent.match(value) is not None
    )


def carrier(traceparent: str | None, tracestate: str | None) -> str | None:
    """The `trace` of a task frame: the traceparent, then its tracestate after one space
    (a traceparent has a fixed length, so the split needs no escaping)."""
    if traceparent is None:
        return None
    return f"{traceparent} {tracestate}" if tracestate else traceparent


def split_carrier(trace: str | None) -> tuple[str, str | None] | None:
    """(traceparent, tracestate) of a frame's `trace`; None if it holds none or a bad one."""
    if trace is None:
        return None
    parent = trace[:TRACEPARENT_LENGTH]
    if not valid_traceparent(parent):
        return None
    return parent, (trace[TRACEPARENT_LENGTH + 1 :] or None)


def otel_loaded() -> bool:
    """Whether this process imported OpenTelemetry (and so may want spans). One dict look-up."""
    return "opentelemetry.trace" in sys.modules


LINK_AFTER_S: Final = 3600.0
"""A task that waited longer than this since its submit starts a trace of its own, linked
to its creation context (traces that span hours break trace views; OBSERVABILITY §3.3)."""


def submitted_at(task_id: str) -> float | None:
    """When a task was made, read from its time-ordered id (48 bits of Unix milliseconds)."""
    try:
        return int(task_id[:8] + task_id[9:13], 16) / 1000
    except ValueError:
        return None


def as_child(task_id: str, now: float) -> bool:
    """The mode rule: an attempt's span is a child of the creation context while the task
    is younger than LINK_AFTER_S, else the root of a new trace (always with a link)."""
    made = submitted_at(task_id)
    return made is not None and now - made < LINK_AFTER_S
