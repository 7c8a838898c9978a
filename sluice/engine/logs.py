"""Captured log lines (DESIGN §8 "Logs"): what workers ship while attempts run (with
their starts) and with their results, checked line by line (a worker is not trusted
with the store), read back a page at a time with a marker where lines were dropped,
followed live, and purged by retention (the timers leader's job).

An attempt keeps `max_log_bytes` (the worker keeps the head and the tail; the server
refuses more than twice that from one attempt); a task keeps 1 MiB across attempts (the
store drops the oldest attempts' lines). Lines of tasks that succeeded are kept
`log_retention_s`; the others' as long as their task.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Iterable

import msgspec

from ..contract import LogEntry
from ..model import MARKER, SHARED, LogBatch, LogRecord, storable
from ..protocol import MAX_PROGRESS_MESSAGE, LogLine, ProgressItem, ProgressReport
from ..rawjson import within_depth
from ..store import LogQuery, ProgressNote, Started
from .registry import WorkerConn
from .runtime import Runtime

LINE_BYTES = 8 * 1024 + 16  # the worker cuts lines at 8 KiB (and marks the cut)
LOGGER_BYTES = 200
EXTRA_BYTES = 4 * 1024
STREAMS = frozenset({"log", "stdout", "stderr"})
MAX_SEQ = 10_000_000
PURGE_BATCH = 2000
log = logging.getLogger("sluice.logs")
_LEVEL_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def line_cost(line: LogLine | LogRecord) -> int:
    return len(line.message) + len(line.logger) + 48


# A worker's clock may be off by this much either way, and its timestamps are kept; past
# it they are not times at all (-1e308): every sum and histogram they entered broke.
WORKER_SKEW_S = 86_400.0


def worker_time(at: float, since: float, now: float) -> float:
    """A worker's timestamp of an attempt, held within a day of the span the server saw
    (`since` its dispatch, to `now`)."""
    if not math.isfinite(at):
        return now
    return min(max(at, since - WORKER_SKEW_S), now + WORKER_SKEW_S)


def records(attempt: int, lines: list[LogLine]) -> list[LogRecord]:
    """A worker's lines as the store keeps them, each held to the protocol's bounds."""
    out = []
    for ln in lines:
        if not (0 <= ln.seq < MAX_SEQ and math.isfinite(ln.at)):
            continue
        extra: bytes | None = bytes(ln.extra)
        if extra is not None and (
            len(extra) > EXTRA_BYTES or not extra.startswith(b"{") or not within_depth(extra)
        ):
            extra = None  # null, or not an object, or too large or too deep
        out.append(
            LogRecord(
                attempt,
                ln.seq,
                ln.at,
                min(max(ln.level, 0), 100),
                ln.stream if ln.stream in STREAMS else "log",
                storable(ln.logger[:LOGGER_BYTES]),
                storable(ln.message[:LINE_BYTES]),
                extra.decode() if extra is not None else None,
            )
        )
    return out


def level_name(level: int) -> str:
    return _LEVEL_NAMES.get(level, f"Level {level}")


def entries(lines: list[LogRecord], after: tuple[int, int], gaps: bool) -> list[LogEntry]:
    """Lines as the API shows them; with `gaps`, a marker where an attempt's numbering
    skips (lines dropped between its head and its tail)."""
    out = []
    last_attempt, last_seq = after
    for ln in lines:
        if gaps and ln.seq > 0 and ln.stream != MARKER:
            first = last_seq + 1 if ln.attempt == last_attempt else 0
            if ln.seq > first:
                omitted = ln.seq - first
                out.append(
                    LogEntry(
                        ln.attempt,
                        ln.seq - 1,
                        ln.at,
                        "INFO",
                        MARKER,
                        "sluice",
                        f"… {omitted:,} lines dropped here: an attempt keeps the head and "
                        "the tail of its lines …",
                    )
                )
        extra = msgspec.Raw(ln.extra.encode()) if ln.extra is not None else None
        out.append(
            LogEntry(
                ln.attempt,
                ln.seq,
                ln.at,
                level_name(ln.level),
                ln.stream,
                ln.logger,
                ln.message,
                extra,
            )
        )
        last_attempt, last_seq = ln.attempt, ln.seq
    return out


class TaskLogs:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        # Bytes taken per (worker, task, attempt) while it runs: a worker that ships more
        # than twice the budget is not listened to (its lines are dropped).
        self._taken: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self._news: dict[str, asyncio.Event] = {}  # followed tasks: set when lines arrive
        self._purged_to = 0.0

    async def progress(self, conn: WorkerConn, items: list[ProgressItem]) -> None:
        """A worker's news of running attempts: starts and lines, fenced on its leases."""
        starts, batches, notes = [], [], []
        now = self._rt.clock.now()
        for item in items:
            tenant_id = await self._tenant_of(conn, item.id)
            if tenant_id is None:
                continue
            if item.progress != _NULL:  # only from handlers that report progress
                report = _report(conn, item)
                if report is not None:
                    notes.append(
                        ProgressNote(
                            tenant_id, item.id, item.attempt, conn.worker_id, report.done,
                            report.total, report.message, self._rt.clock.now(),
                        )
                    )  # fmt: skip
            if item.started_at is not None and math.isfinite(item.started_at):
                at = worker_time(item.started_at, now, now)
                starts.append(Started(tenant_id, item.id, item.attempt, conn.worker_id, at))
            lines = self._within_budget(conn, item.id, item.attempt, item.logs)
            if lines or item.drop is not None:
                drop = _drop(item.drop)
                batches.append(
                    LogBatch(tenant_id, item.id, item.attempt, conn.worker_id, lines, drop)
                )
        store = self._rt.store
        if starts:
            await store.mark_started(starts)
        if notes:
            await store.record_progress(notes)
        if batches:
            await store.append_logs(batches)
            self.wake(b.task_id for b in batches)

    def final(
        self, conn: WorkerConn, task_id: str, attempt: int, lines: list[LogLine]
    ) -> list[LogRecord]:
        """An attempt's last lines, shipped with its result."""
        kept = self._within_budget(conn, task_id, attempt, lines)
        self._taken.pop((conn.worker_id, task_id, attempt), None)
        return kept

    def _within_budget(
        self, conn: WorkerConn, task_id: str, attempt: int, lines: list[LogLine]
    ) -> list[LogRecord]:
        if not lines:
            return []
        if len(self._taken) > 100_000:  # never shrinks only if workers forge attempts
            self._taken.clear()
        key = (conn.worker_id, task_id, attempt)
        budget = 2 * self._rt.settings.max_log_bytes - self._taken[key]
        kept = []
        for record in records(attempt, lines):
            budget -= line_cost(record)
            if budget < 0:
                break
            kept.append(record)
        self._taken[key] = 2 * self._rt.settings.max_log_bytes - max(budget, 0)
        return kept

    async def _tenant_of(self, conn: WorkerConn, task_id: str) -> str | None:
        if conn.tenant_id != SHARED:
            return conn.tenant_id
        held = conn.inflight.get(task_id)
        if held is not None:
            return held.tenant_id
        return await self._rt.store.task_tenant(task_id)  # a shared pool's: anyone's

    # -- reading ------------------------------------------------------------------------

    async def read(self, tenant_id: str, task_id: str, query: LogQuery) -> list[LogEntry]:
        lines = await self._rt.store.list_logs(tenant_id, task_id, query)
        gaps = query.level == 0 and query.text is None
        return entries(lines, query.after, gaps)

    async def news(self, task_id: str, timeout: float) -> None:
        """Wait up to `timeout` for lines of the task to arrive at this node (lines that
        arrive at another node are found by the caller's next read)."""
        event = self._news.setdefault(task_id, asyncio.Event())
        try:
            await self._rt.clock.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            if self._news.get(task_id) is event:
                del self._news[task_id]

    def wake(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            event = self._news.get(task_id)
            if event is not None:
                event.set()

    # -- retention ----------------------------------------------------------------------

    async def purge_once(self) -> int:
        """Delete the lines of tasks that succeeded more than `log_retention_s` ago,
        walking the lines by time from where the last purge stopped."""
        rt = self._rt
        before = rt.clock.now() - rt.settings.log_retention_s
        total = 0
        while True:
            deleted, reached = await rt.store.purge_logs(self._purged_to, before, PURGE_BATCH)
            total += deleted
            self._purged_to = reached
            if reached >= before:
                return total


_NULL = msgspec.Raw(b"null")
_report_decoder = msgspec.json.Decoder(ProgressReport)


def _report(conn: WorkerConn, item: ProgressItem) -> ProgressReport | None:
    """A worker's progress report if it holds to the protocol's bounds, else None with a
    warning (a bad report is dropped; the frame's other news is kept)."""
    try:
        report = _report_decoder.decode(item.progress)
        problem = progress_problem(report)
    except msgspec.DecodeError as exc:
        problem = str(exc)
    if problem is None:
        if report.message is not None and "\x00" in report.message:
            report = msgspec.structs.replace(report, message=storable(report.message))
        return report
    log.warning(
        "worker %s: dropped the progress of task %s attempt %d: %s",
        conn.worker_id, item.id, item.attempt, problem,
    )  # fmt: skip
    return None


def progress_problem(report: ProgressReport) -> str | None:
    """What is wrong with a progress report, or None: amounts are finite numbers >= 0,
    a message at most MAX_PROGRESS_MESSAGE characters."""
    for name, value in (("done", report.done), ("total", report.total)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            return f"{name} must be a finite number >= 0, not {value!r}"
    if report.message is not None and len(report.message) > MAX_PROGRESS_MESSAGE:
        return f"the message is {len(report.message)} characters; at most {MAX_PROGRESS_MESSAGE}"
    return None


def _drop(drop: tuple[int, int] | None) -> tuple[int, int] | None:
    if drop is None or not (0 <= drop[0] < drop[1] <= MAX_SEQ):
        return None
    return drop
