"""Process isolation (DESIGN §7, docs/isolation.md): a pool of child processes that run
attempts one at a time, with limits, killed on timeout or cancel.

Children come from a forkserver that has imported the App, so a new one costs a fork,
not an interpreter start. A child serves one tenant for its whole life (a fresh spare is
given to whichever tenant needs one first); it is reused for up to `max_tasks` attempts
while its resident memory stays under `max_rss_mb`, then replaced. A child that dies
fails its attempt with the cause (`WorkerCrashed` and the signal, `CpuLimitExceeded`,
`MemoryLimitExceeded`); one killed for its timeout reports `TimedOut`. The worker and
its other attempts carry on. Where the worker may write a cgroup v2 hierarchy, each
child has a group whose memory.max holds the attempt's memory (cgroups.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from multiprocessing import popen_forkserver
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Literal

from ..errors import SluiceError
from . import cgroups
from .child import Done, Job

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerProcess

    from .app import App
    from .capture import AttemptLog

log = logging.getLogger("sluice.worker")

Isolation = Literal["thread", "process"]
ISOLATIONS = ("thread", "process")
DEFAULT_MAX_TASKS = 100  # attempts a child runs before it is replaced
DEFAULT_MAX_RSS_MB = 1024  # a child whose resident memory passed this is replaced
SPARES = 1  # fresh children kept ready beside the idle ones
JOIN_S = 2.0


class _LockedPopen(popen_forkserver.Popen):
    """A forkserver child's handle whose exit status two threads may ask for at once.

    The forkserver writes a child's status once to a pipe; CPython's `poll` reads it
    without a lock, so when two threads poll together (a pool thread's `join` after a
    death, and `Process.start`'s sweep of every child as a spare is made), one reads
    the status and the other meets the pipe's end and records 255, which may win: a
    SIGSEGV read as "exited with status 255" (seen in CI). One poll at a time here."""

    def __init__(self, process_obj: Any) -> None:
        self._polling = threading.Lock()
        super().__init__(process_obj)

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if flag != os.WNOHANG and self.returncode is None:
            wait([self.sentinel])  # a blocking poll waits for the death without the lock
        with self._polling:
            return super().poll(os.WNOHANG)


class _Process(multiprocessing.context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _LockedPopen:  # (multiprocessing's name for it)
        return _LockedPopen(process_obj)


class IsolationError(SluiceError):
    """Process isolation cannot work here (the App cannot be imported by a child)."""


def app_reference(app: App) -> str | None:
    """`module:attribute` naming `app`, found from its handlers' module, if importable."""
    for tf in app.tasks.values():
        module = sys.modules.get(tf.fn.__module__)
        if module is None or module.__name__ == "__main__":
            continue
        for name, value in vars(module).items():
            if value is app:
                return f"{module.__name__}:{name}"
    return None


class Child:
    """One child process and its end of the pipe."""

    def __init__(
        self, process: ForkServerProcess, conn: Connection, group: cgroups.Group | None = None
    ) -> None:
        self.process = process
        self.conn = conn
        self.group = group  # its cgroup v2 group, when memory.max is the limit
        self.cgroup_limited = False  # the current attempt's memory_mb is its memory.max
        self.oom_killed = False  # read once it died, before its group goes
        self.tenant: str | None = None  # set by its first attempt, for good
        self.tasks = 0
        self.killed: str | None = None  # why the parent killed it: "timeout", "cancelled"

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def kill(self, reason: str) -> None:
        self.killed = reason
        with contextlib.suppress(Exception):
            self.process.kill()

    def exchange(self, job: Job, log: AttemptLog | None) -> Done | None:
        """Send a job and relay the child's lines until its answer (a pool thread);
        None when the child died before answering."""
        try:
            self.conn.send(job)
            while True:
                message = self.conn.recv()
                kind = message[0]
                if kind == "done":
                    done: Done = message[1]
                    return done
                if log is None:
                    continue
                if kind == "add":
                    log.add(*message[1:])
                elif kind == "write":
                    log.write(message[1], message[2])
        except (EOFError, OSError):
            return None

    def close(self) -> None:
        """Let it go: an idle child exits at the end of its pipe (killed if it does not);
        a killed one is reaped before its pipe is closed, as a thread may still read it."""
        if self.killed is None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.process.join(JOIN_S)
        if self.process.exitcode is None:
            self.kill("closed")
            self.process.join(JOIN_S)
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.group is not None:
            self.group.remove()

    def limit(self, job: Job) -> Job:
        """The job with its memory limit placed: in the child's cgroup when it has one
        (the child then sets no RLIMIT_DATA), else left to the child's rlimit."""
        self.cgroup_limited = False
        if self.group is None:
            return job
        try:
            # cgroupfs lives in memory and memory.max never goes below what the child
            # is charged, so these writes do not block the loop on reclaim.
            self.group.limit(job.memory_mb)
        except OSError as exc:
            log.warning("cgroup %s: %s; this attempt is held by RLIMIT_DATA", self.group.path, exc)
            return job
        self.cgroup_limited = True
        return replace(job, memory_rlimit=False)


class Children:
    """The pool of child processes of one worker."""

    def __init__(
        self,
        app_ref: str,
        *,
        slots: int,
        max_tasks: int = DEFAULT_MAX_TASKS,
        max_rss_mb: float = DEFAULT_MAX_RSS_MB,
        memory_cgroups: cgroups.Cgroups | None = None,
    ) -> None:
        self.app_ref = app_ref
        self.cgroups = memory_cgroups  # None: children's memory limit is RLIMIT_DATA
        self.slots = slots
        self.max_tasks = max_tasks
        self.max_rss_mb = max_rss_mb
        self.started = 0  # children started so far (tests and the bench read it)
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["sluice.worker.child", app_ref.partition(":")[0]])
        self._idle: dict[str, list[Child]] = defaultdict(list)
        self._spares: list[Child] = []
        self._busy: set[Child] = set()
        self._lock = threading.Lock()
        # Threads that start children and relay pipes: one per slot, plus spares.
        self._threads = ThreadPoolExecutor(2 * slots + 4, thread_name_prefix="sluice-child")
        self._closed = False
        self._warming = False
        self._warm_task: asyncio.Task[None] | None = None

    def _spawn(self) -> Child:
        from .child import main  # the forkserver has it imported already

        ours, theirs = self._context.Pipe()
        process = _Process(target=main, args=(theirs, self.app_ref), daemon=True)
        process.start()
        theirs.close()  # the child's end: once it dies, reads here see EOF
        with self._lock:
            self.started += 1
        group = None
        if self.cgroups is not None and process.pid is not None:
            try:
                group = self.cgroups.attach(process.pid)
            except OSError as exc:
                log.warning("child %d stays out of a cgroup (%s): RLIMIT_DATA", process.pid, exc)
        return Child(process, ours, group)

    async def warm(self) -> None:
        """Start the spares now, so the first attempts find a child ready."""
        if self._warming:
            return
        self._warming = True
        loop = asyncio.get_running_loop()
        try:
            while len(self._spares) < SPARES and not self._closed:
                child = await loop.run_in_executor(self._threads, self._spawn)
                self._spares.append(child)
        finally:
            self._warming = False

    async def run(self, tenant: str, job: Job, log: AttemptLog | None) -> tuple[Done | None, Child]:
        """Run one job in a child of `tenant`; returns its answer (None: it died) and the
        child, to ask why. Cancelling this kills the child."""
        loop = asyncio.get_running_loop()
        child = await self._acquire(tenant)
        job = child.limit(job)
        future = loop.run_in_executor(self._threads, child.exchange, job, log)
        try:
            if job.timeout_s:
                try:
                    done = await asyncio.wait_for(asyncio.shield(future), job.timeout_s)
                except TimeoutError:
                    child.kill("timeout")
                    done = await future
            else:
                done = await asyncio.shield(future)
        except asyncio.CancelledError:
            child.kill("cancelled")
            self._discard(child)
            raise
        if done is None:
            await loop.run_in_executor(self._threads, child.process.join, JOIN_S)
            if child.cgroup_limited and child.group is not None:
                child.oom_killed = child.group.oom_killed()
            self._discard(child)
        elif child.killed:  # it answered as the timeout killed it: not reused
            self._discard(child)
        else:
            self._release(child, done)
        return done, child

    async def _acquire(self, tenant: str) -> Child:
        idle = self._idle[tenant]
        child = idle.pop() if idle else self._spares.pop() if self._spares else None
        if child is None:
            self._trim()
            child = await asyncio.get_running_loop().run_in_executor(self._threads, self._spawn)
        child.tenant = tenant
        self._busy.add(child)
        if len(self._spares) < SPARES and not self._warming:
            self._warm_task = asyncio.get_running_loop().create_task(self.warm())
        return child

    def _trim(self) -> None:
        """Keep the children alive at most slots + spares: the idle of other tenants
        make room for a new one."""
        idle = [c for children in self._idle.values() for c in children]
        while idle and len(idle) + len(self._busy) + len(self._spares) >= self.slots + SPARES:
            child = idle.pop(0)
            self._idle[child.tenant or ""].remove(child)
            self._threads.submit(child.close)

    def _release(self, child: Child, done: Done) -> None:
        self._busy.discard(child)
        child.tasks += 1
        if (
            done.retire
            or child.tasks >= self.max_tasks
            or done.rss_mb > self.max_rss_mb
            or self._closed
        ):
            self._threads.submit(child.close)
        else:
            self._idle[child.tenant or ""].append(child)

    def _discard(self, child: Child) -> None:
        self._busy.discard(child)
        self._threads.submit(child.close)

    def close(self) -> None:
        """Stop every child (the worker is exiting)."""
        self._closed = True
        children = [*self._spares, *self._busy, *(c for i in self._idle.values() for c in i)]
        for child in children:
            child.kill("closed")
        for child in children:  # a group can go only once its process is gone
            if child.group is not None:
                child.process.join(JOIN_S)
                child.group.remove()
        self._spares.clear()
        self._idle.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)


def death(child: Child, job: Job) -> tuple[str, str, str]:
    """(outcome, error type, message) of an attempt whose child died."""
    code = child.process.exitcode
    if child.killed == "timeout":
        return (
            "timeout",
            "TimedOut",
            f"the handler ran past its timeout of {job.timeout_s:g} s; its process was killed",
        )
    if code is not None and code < 0:
        name = _signal_name(-code)
        if -code == signal.SIGXCPU:
            return (
                "error",
                "CpuLimitExceeded",
                f"the handler used more than {job.cpu_time_s:g} s of CPU time ({name})",
            )
        if -code == signal.SIGKILL and child.cgroup_limited:
            if child.oom_killed:  # memory.events counted it: the limit, not someone's kill
                limit = f"its memory limit of {job.memory_mb} MiB" if job.memory_mb else "memory"
                return (
                    "error",
                    "MemoryLimitExceeded",
                    f"the kernel's OOM killer ended the handler's process in its cgroup: "
                    f"it went past {limit}",
                )
        elif -code == signal.SIGKILL and job.memory_mb:
            return (
                "error",
                "MemoryLimitExceeded",
                f"the handler's process was killed (SIGKILL) with a memory limit of "
                f"{job.memory_mb} MiB: most likely out of memory",
            )
        return "error", "WorkerCrashed", f"the handler's process died of {name} (signal {-code})"
    return "error", "WorkerCrashed", f"the handler's process exited with status {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def resolve(*choices: Any) -> Isolation:
    """The first isolation named among `choices` (a function's, the worker's, the
    App's, the default)."""
    for choice in choices:
        if choice is not None:
            if choice not in ISOLATIONS:
                raise ValueError(f"isolation is one of {ISOLATIONS}, not {choice!r}")
            isolation: Isolation = choice
            return isolation
    return "thread"
