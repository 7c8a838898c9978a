"""The child side of process isolation (docs/isolation.md): runs attempts sent over a pipe.

A child is started by `isolation.Children` (forkserver), imports the App by its
`module:attribute` reference once, then runs one attempt at a time: it applies the
function's limits for the attempt (RLIMIT_DATA above what the child already uses,
unless the parent put it in a cgroup v2 group with memory.max; RLIMIT_CPU above the CPU
time it has used), runs the handler, classifies its end the way
the in-thread runtime does, and answers with a `Done`. Log records and printed lines go
back over the same pipe while the attempt runs, into the parent's capture.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import resource
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from ..errors import Reject, Retry, Throttled
from ..protocol import Payload
from . import capture
from .app import App, TaskFunction
from .context import TaskContext, _current

MAX_TRACEBACK = 16 * 1024
_encoder = msgspec.json.Encoder()
_payload = msgspec.json.Decoder(Payload)
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Job:
    """One attempt for a child to run."""

    task_id: str
    attempt: int
    function: str
    payload: bytes
    timeout_s: float | None
    memory_mb: int | None
    cpu_time_s: float | None
    capture: bool
    memory_rlimit: bool = True  # False: the child's cgroup holds memory_mb (cgroups.py)


@dataclass(frozen=True)
class Done:
    """How an attempt ended in the child; `result` is the return value's JSON."""

    outcome: str
    result: bytes | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    retry_after_s: float | None = None
    retire: bool = False  # the child's state is suspect (it ran out of memory): replace it
    rss_mb: float = 0.0


class PipeLog(capture.AttemptLog):
    """What a handler logs or prints in the child, sent to the parent's `AttemptLog`
    of the attempt (which numbers, bounds and ships the lines)."""

    __slots__ = ("_conn", "_send_lock")

    def __init__(self, conn: Connection, lock: threading.Lock) -> None:
        super().__init__()
        self._conn = conn
        self._send_lock = lock

    def add(
        self, level: int, stream: str, logger: str, message: str, extra: bytes | None = None
    ) -> None:
        with self._send_lock:
            self._conn.send(("add", level, stream, logger, message, extra))

    def write(self, stream: str, text: str) -> None:
        with self._send_lock:
            self._conn.send(("write", stream, text))


def main(conn: Connection, app_ref: str) -> None:
    """A child's life: run jobs until the parent closes the pipe (or kills it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the parent's
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file
    app = load(app_ref)
    lock = threading.Lock()
    capture.install()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        done = run(app, job, conn, lock)
        with lock:
            conn.send(("done", done))


def load(reference: str) -> App:
    module_name, _, attr = reference.partition(":")
    app = getattr(importlib.import_module(module_name), attr, None)
    if not isinstance(app, App):
        raise SystemExit(f"{reference!r} is not a sluice.App")
    return app


def run(app: App, job: Job, conn: Connection, lock: threading.Lock) -> Done:
    ctx = TaskContext(job.task_id, job.attempt, job.function, job.timeout_s)
    _current.set(ctx)
    capture.attach(PipeLog(conn, lock) if job.capture else None)
    fn = app.tasks.get(job.function)
    restore = _limit(job)
    try:
        if fn is None:
            raise Reject(f"this worker does not serve {job.function!r}")
        payload = _payload.decode(job.payload)
        args = [ctx, *payload.args] if fn.takes_context else payload.args
        if fn.is_async:
            value = asyncio.run(fn.fn(*args, **payload.kwargs))
        else:
            value = fn.fn(*args, **payload.kwargs)
        done = Done("ok", result=_encoder.encode(value))
    except MemoryError as exc:
        restore()
        done = Done(
            "error", error_type="MemoryLimitExceeded",
            error_message=f"the handler went past its memory limit of {job.memory_mb} MiB"
            if job.memory_mb else f"the handler ran out of memory ({exc!r})",
            traceback=_traceback(exc), retire=True,
        )  # fmt: skip
    except BaseException as exc:  # SystemExit too: the child carries on
        done = _failed(exc, fn)
    finally:
        restore()
        capture.attach(None)
        sys.stdout.flush()
        sys.stderr.flush()
    return replace(done, rss_mb=_rss_mb())


def _failed(exc: BaseException, fn: TaskFunction[Any, Any] | None) -> Done:
    """The same classes as the in-thread runtime (runtime.Worker._call)."""
    tb = _traceback(exc)
    name, message = type(exc).__name__, str(exc)[:4096]
    if isinstance(exc, Reject) or (fn is not None and isinstance(exc, fn.non_retryable)):
        return Done("reject", error_type=name, error_message=message, traceback=tb)
    if isinstance(exc, Retry):
        return Done("retry", None, name, message, tb, exc.delay)
    if isinstance(exc, Throttled):
        return Done("throttled", None, name, message, tb, exc.retry_after)
    if isinstance(exc, TimeoutError):
        return Done("timeout", error_type=name, error_message=message, traceback=tb)
    return Done("error", error_type=name, error_message=message, traceback=tb)


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:]


def _limit(job: Job) -> Any:
    """Set the attempt's soft limits on top of what the child uses now; returns a
    function that lifts them again (soft limits may go back up to the hard ones)."""
    saved: list[tuple[int, tuple[int, int]]] = []

    def lower(kind: int, value: int) -> None:
        soft, hard = resource.getrlimit(kind)
        saved.append((kind, (soft, hard)))
        cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (cap, hard))

    if job.memory_mb and job.memory_rlimit:
        lower(resource.RLIMIT_DATA, _data_bytes() + job.memory_mb * 1024 * 1024)
    if job.cpu_time_s:
        used = resource.getrusage(resource.RUSAGE_SELF)
        lower(resource.RLIMIT_CPU, int(used.ru_utime + used.ru_stime + job.cpu_time_s) + 1)

    def restore() -> None:
        while saved:
            kind, limits = saved.pop()
            resource.setrlimit(kind, limits)

    return restore


def _data_bytes() -> int:
    """The child's data segment now (VmData): the memory limit is on top of it."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE / (1024 * 1024)
    except OSError:
        return 0.0
