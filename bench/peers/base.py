"""What every plug-in shares; standard library only, so it imports in either virtualenv.

A plug-in is a module holding a `System` subclass named `Plugin`. Its no-op task calls
`record(i)`, which appends `i` and the worker's clock to one file: the driver counts
runs, lost and duplicated tasks from it, and reads start times for latency and lateness.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("BENCH_PEERS_REDIS", "redis://127.0.0.1:6379/9")
PG_SERVER = os.environ.get("BENCH_PEERS_PG", "postgresql://postgres@127.0.0.1:5432")
RUNS_ENV = "BENCH_PEERS_RUNS"
PGIDS_ENV = "BENCH_PEERS_PGIDS"
STOP_GRACE_S = 10.0

_fd: tuple[int, int] | None = None  # (pid, fd): reopened after a fork


def record(i: int) -> None:
    """Called first thing by every system's no-op task."""
    global _fd
    now = time.time()
    if _fd is None or _fd[0] != os.getpid():
        path = os.environ[RUNS_ENV]
        _fd = (os.getpid(), os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    os.write(_fd[1], f"{i} {now:.6f}\n".encode())


def read_runs(path: Path) -> dict[int, list[float]]:
    """Every id that ran, with the start time of each run."""
    runs: dict[int, list[float]] = {}
    with contextlib.suppress(FileNotFoundError):
        data = path.read_bytes()
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            i, t = line.split()
            runs.setdefault(int(i), []).append(float(t))
    return runs


class System:
    """One task system. Subclasses set the class attributes and the enqueue methods;
    the process handling lives here."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    #: how the 2 worker processes are run, and what each can do at once
    workers_config: ClassVar[str] = ""
    #: broker, serializer, polling and anything else that is not the default
    config: ClassVar[str] = ""
    has_bulk: ClassVar[bool] = False
    has_delay: ClassVar[bool] = False
    #: how the fairness workload's two tenants are run (none of the peers has tenants)
    fairness_config: ClassVar[str] = (
        "no tenants: both tenants' tasks go to the one default queue, which the 2 worker "
        "processes consume first-in first-out"
    )

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.procs: list[subprocess.Popen[bytes]] = []

    # -- what a plug-in provides -------------------------------------------------
    def setup(self) -> None:
        """Empty the queues (or make a fresh database) before a run."""

    def start_workers(self, processes: int = 2) -> None:
        raise NotImplementedError

    def enqueue_one(self, i: int) -> None:
        raise NotImplementedError

    def enqueue_bulk(self, ids: list[int]) -> None:
        raise NotImplementedError

    def enqueue_delayed(self, i: int, delay_s: float) -> None:
        raise NotImplementedError

    def setup_tenants(self, names: list[str]) -> None:
        """Producers for these tenants (the fairness workload); peers share one queue."""

    def start_shared_workers(self, processes: int = 2) -> None:
        """The 2 worker processes every tenant shares."""
        self.start_workers(processes)

    def enqueue_as(self, tenant: str, ids: list[int]) -> None:
        """Enqueue as a tenant: one task, or a bulk chunk."""
        if len(ids) > 1 and self.has_bulk:
            self.enqueue_bulk(ids)
        else:
            for i in ids:
                self.enqueue_one(i)

    def teardown(self) -> None:
        """Close clients, drop databases; processes are stopped by `stop`."""

    # -- processes ---------------------------------------------------------------
    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start a process in its own process group, logged under the work folder, and
        note the group so the harness can kill it even if this driver dies."""
        log = open(self.work / f"proc-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        with open(os.environ[PGIDS_ENV], "a") as f:
            f.write(f"{proc.pid}\n")

    def bin(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)

    def stop(self) -> None:
        """SIGTERM every process group started, then SIGKILL what is left."""
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group may outlive its leader
            proc.wait()
        self.procs.clear()
