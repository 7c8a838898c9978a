"""A task's captured log lines (DESIGN §8 "Logs"): `GET /v1/tasks/{id}/logs`."""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from .fields import TEXT, PageSize

LEVELS: Final = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
LogCursor = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,9}\.-?[0-9]{1,9}$", max_length=20)]
LogLevel = Annotated[str, msgspec.Meta(pattern=r"^(?i:debug|info|warning|error|critical)$")]


class LogEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line an attempt wrote: a `logging` record (stream `log`) or a line of its
    stdout or stderr; stream `marker` stands where lines were dropped (an attempt keeps
    the head and the tail of its lines, a task its latest attempts')."""

    attempt: int
    seq: int
    at: float
    level: str  # DEBUG, INFO, WARNING, ERROR, CRITICAL (or "Level N")
    stream: str  # log, stdout, stderr or marker
    logger: str
    message: str
    extra: Any = None  # a record's structured extras (`extra=` of a logging call)


class LogEnd(msgspec.Struct, frozen=True):
    """The last event of `GET /v1/tasks/{id}/logs/stream`: the task has ended and every
    line it wrote was sent."""

    ended: bool = True


class LogPage(msgspec.Struct, frozen=True):
    lines: list[LogEntry]
    next: str  # pass as `cursor` to read on from the last line given
    more: bool  # more lines are there now; false: read on later, or follow


class LogsQuery(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/tasks/{id}/logs` (and `/logs/stream`): of one attempt, at a level or
    above, holding a text (case-insensitive), after a cursor. `wait` long-polls up to
    that many seconds for new lines when there are none and the task has not ended."""

    attempt: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    level: LogLevel | None = None
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=TEXT)] | None = None
    cursor: LogCursor | None = None
    limit: PageSize = 1000
    wait: Annotated[float, msgspec.Meta(ge=0, extra_json_schema={"x-limit": "max_wait_s"})] = 0.0
