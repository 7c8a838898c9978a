"""Per-attempt log capture (DESIGN §8 "Logs", docs/observability.md).

A context variable names the attempt whose handler is running; one handler on the root
logger and one tee on each of stdout and stderr append to that attempt's `AttemptLog`
(or pass through alone when none is set). asyncio tasks copy their context when they are
created and the runtime runs plain handlers in a copied context, so concurrent attempts
in one process, async or threaded, never see each other's lines. A thread a handler
starts itself does not inherit the context: its lines reach the console only.

An attempt keeps at most `budget` bytes: the first quarter as written (the head), then
the last three quarters (the tail), with the lines between dropped. Lines are numbered
without gaps, so a gap in what the server holds is where lines were dropped. Lines are
taken in batches while the attempt runs (`take`), and tail lines already shipped that
fall out of the window are named for the server to delete.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections import deque
from contextvars import ContextVar
from typing import IO, Any

import msgspec

from ..protocol import LogLine
from ..tracing import otel_loaded

DEFAULT_BUDGET = 256 * 1024  # bytes per attempt (the server's `max_log_bytes`)
LINE_BYTES = 8 * 1024  # a longer line is cut
LINE_OVERHEAD = 48  # what a line costs besides its text: keeps tiny lines bounded too
MAX_EXTRA_BYTES = 4 * 1024
STDOUT, STDERR = logging.INFO, logging.ERROR  # the levels of printed lines
CUT = " …[cut]"

_current: ContextVar[AttemptLog | None] = ContextVar("sluice_attempt_log", default=None)
_encoder = msgspec.json.Encoder()
_NULL = msgspec.Raw(b"null")
# A LogRecord's own attributes; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_PLAIN = len(logging.makeLogRecord({}).__dict__)
_formatter = logging.Formatter()


class AttemptLog:
    """The captured lines of one attempt, bounded to a head and a tail."""

    __slots__ = (
        "_drop_sent", "_drop_upto", "_head_budget", "_head_bytes", "_head_end", "_lock",
        "_partial", "_seq", "_tail", "_tail_budget", "_tail_bytes", "_tail_new",
        "_taken_upto", "_unsent", "dropped",
    )  # fmt: skip

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self._head_budget = budget // 4
        self._tail_budget = budget - self._head_budget
        self._lock = threading.Lock()  # handler threads write while the loop takes
        self._seq = 0
        self._head_bytes = 0
        self._unsent: list[LogLine] = []  # head lines not taken yet
        self._head_end: int | None = None  # the first line past the head, once it is full
        self._tail: deque[tuple[LogLine, int]] = deque()
        self._tail_bytes = 0
        self._tail_new = 0  # tail lines appended since the last take
        self._taken_upto = 0  # tail lines below this seq were taken (shipped)
        self._drop_upto = 0  # shipped tail lines below this seq fell out of the window
        self._drop_sent = 0
        self._partial: dict[str, str] = {}
        self.dropped = 0

    # -- writing (any thread) ------------------------------------------------------

    def add(
        self, level: int, stream: str, logger: str, message: str, extra: bytes | None = None
    ) -> None:
        if len(message) > LINE_BYTES:
            message = message[:LINE_BYTES] + CUT
        cost = len(message) + len(logger) + LINE_OVERHEAD + (len(extra) if extra else 0)
        raw = msgspec.Raw(extra) if extra else _NULL
        with self._lock:
            line = LogLine(self._seq, time.time(), level, stream, logger, message, raw)
            self._seq += 1
            if self._head_end is None:
                if self._head_bytes + cost <= self._head_budget:
                    self._head_bytes += cost
                    self._unsent.append(line)
                    return
                self._head_end = self._taken_upto = line.seq
            self._tail.append((line, cost))
            self._tail_bytes += cost
            self._tail_new += 1
            while self._tail_bytes > self._tail_budget:
                old, old_cost = self._tail.popleft()
                self._tail_bytes -= old_cost
                self.dropped += 1
                if old.seq < self._taken_upto:
                    self._drop_upto = old.seq + 1  # shipped already: the server deletes it
                else:
                    self._tail_new -= 1

    def write(self, stream: str, text: str) -> None:
        """Text printed to stdout or stderr: whole lines are kept, a partial one waits."""
        level = STDOUT if stream == "stdout" else STDERR
        pending = self._partial.get(stream, "") + text
        *lines, rest = pending.split("\n")
        for line in lines:
            self.add(level, stream, stream, line)
        if len(rest) > LINE_BYTES:  # a very long line without a newline: keep what fits
            self.add(level, stream, stream, rest)
            rest = ""
        self._partial[stream] = rest

    # -- taking (the worker's loop) ---------------------------------------------------

    def take(self, *, final: bool = False) -> tuple[list[LogLine], tuple[int, int] | None]:
        """The lines not taken yet, and the range of shipped lines to delete, if any."""
        if final:
            for stream, rest in list(self._partial.items()):
                if rest:
                    self.add(STDOUT if stream == "stdout" else STDERR, stream, stream, rest)
            self._partial.clear()
        with self._lock:
            lines, self._unsent = self._unsent, []
            if self._tail_new:
                start = len(self._tail) - self._tail_new
                lines += [line for line, _ in itertools.islice(self._tail, start, None)]
                self._tail_new = 0
                self._taken_upto = self._seq
            drop = None
            if self._drop_upto > self._drop_sent and self._head_end is not None:
                drop = (self._head_end, self._drop_upto)
                self._drop_sent = self._drop_upto
        return lines, drop

    @property
    def written(self) -> bool:
        """Whether anything was written (a partial printed line included)."""
        return self._seq > 0 or any(self._partial.values())

    @property
    def pending(self) -> bool:
        return bool(self._unsent or self._tail_new or self._drop_upto > self._drop_sent)


def current() -> AttemptLog | None:
    return _current.get()


def attach(log: AttemptLog | None) -> None:
    """Make `log` the current attempt's, in the running context."""
    _current.set(log)


class CaptureHandler(logging.Handler):
    """Appends each record to the current attempt's log, if any; Sluice's own loggers
    (the worker runtime's) are never a task's lines."""

    def emit(self, record: logging.LogRecord) -> None:
        log = _current.get()
        if log is None or record.name == "sluice" or record.name.startswith("sluice."):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + _formatter.formatException(record.exc_info)
            if record.stack_info:
                message += "\n" + record.stack_info
            log.add(record.levelno, "log", record.name, message, _extras(record))
        except Exception:
            self.handleError(record)


def _extras(record: logging.LogRecord) -> bytes | None:
    own = record.__dict__
    # Every record has the standard attributes; only one with more can hold extras.
    fields = {k: own[k] for k in own.keys() - _RECORD_FIELDS} if len(own) > _PLAIN else {}
    if otel_loaded():  # the line links to the span it was written in (the attempt's)
        fields.update(_span_ids())
    if not fields:
        return None
    try:
        encoded = _encoder.encode(fields)
    except (TypeError, ValueError, OverflowError):
        encoded = _encoder.encode({k: repr(v) for k, v in fields.items()})
    return encoded if len(encoded) <= MAX_EXTRA_BYTES else None


def _span_ids() -> dict[str, str]:
    from opentelemetry import trace  # loaded already: otel_loaded() said so

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class Tee:
    """sys.stdout or sys.stderr: text goes to the current attempt's log and on, as before."""

    def __init__(self, inner: IO[str], stream: str) -> None:
        self.inner = inner
        self.stream = stream

    def write(self, text: str) -> int:
        log = _current.get()
        if log is not None:
            log.write(self.stream, text)
        return self.inner.write(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, buffer...
        return getattr(self.inner, name)


_installed = threading.Lock()
_handler: CaptureHandler | None = None


def install(level: int = logging.INFO) -> None:
    """Capture from now on (idempotent): the root handler, once per process, and the tees,
    again whenever something (a test runner) replaced sys.stdout or sys.stderr.

    Records at `level` and above are captured even when the root logger was set higher:
    it is lowered, and the handlers it already had are raised to its old level, so the
    console shows what it showed before."""
    global _handler
    with _installed:
        if _handler is None:
            root = logging.getLogger()
            old = root.getEffectiveLevel()
            if old > level:
                for handler in root.handlers:
                    handler.setLevel(max(handler.level, old))
                root.setLevel(level)
            _handler = CaptureHandler(level)
            root.addHandler(_handler)
        if not isinstance(sys.stdout, Tee):
            sys.stdout = Tee(sys.stdout, "stdout")  # type: ignore[assignment]
        if not isinstance(sys.stderr, Tee):
            sys.stderr = Tee(sys.stderr, "stderr")  # type: ignore[assignment]
