"""The app the isolation tests run in real `sluice worker` processes (docs/isolation.md)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from pathlib import Path

import sluice
from tests.acceptance.workload import announce

app = sluice.App("isolated")
MARKERS = Path(os.environ.get("SLUICE_TEST_MARKERS", "."))
# Two attempts, the second at once: a failure class shows on both.
TWICE = sluice.RetryPolicy(max_attempts=2, base_s=0.0, min_backoff_s=0.0, cap_s=0.0)


@app.task(isolation="process", memory_mb=64, retry=TWICE)
def hog(mb: int) -> int:
    """Allocates (and touches) `mb` MiB: past its 64 MiB limit."""
    block = bytearray(mb * 1024 * 1024)
    return len(block)


@app.task(isolation="process", retry=TWICE)
def aborts() -> None:
    os.abort()


@app.task(isolation="process", retry=TWICE)
def segfaults() -> None:
    ctypes.string_at(0)


@app.task(isolation="process", timeout=1, retry=TWICE)
def spins() -> None:
    while True:
        pass


@app.task(isolation="process", cpu_time_s=1, retry=TWICE)
def burns() -> None:
    while True:
        pass


@app.task(isolation="process")
def whoami(label: str) -> int:
    """The child's pid; says so in the task's logs, printed and logged."""
    print(f"printed by {label} in the child")
    logging.getLogger("isolated").warning("logged by %s in the child", label)
    return os.getpid()


@app.task(isolation="process")
async def awhoami() -> int:
    """An async handler, isolated: its child's pid."""
    return os.getpid()


@app.task(isolation="process")
def hangs(name: str) -> None:
    """Announces its pid, then sleeps (cancel kills it)."""
    announce(MARKERS / f"{name}.pid", str(os.getpid()))
    threading.Event().wait(300)


@app.task
def quick(i: int) -> int:
    """In the worker's thread pool, as a tenant's own worker runs by default."""
    return i


@app.task(memory_mb=1024)
def big(name: str) -> str:
    """Holds 1 GiB (declared; nothing allocated) for a moment, in a thread."""
    threading.Event().wait(0.3)
    return name


@app.task
def shared_pid() -> int:
    """The process it runs in: a shared pool's worker isolates it by default."""
    return os.getpid()


@app.task(isolation="process")
def killed(group_base: str, oom_kills: int) -> None:
    """Plays the kernel for a fake cgroup tree (tests/test_cgroups.py): records
    `oom_kills` in its group's memory.events, then dies of SIGKILL."""
    group = Path(group_base) / f"sluice-{os.getpid()}"
    (group / "memory.events").write_text(f"oom 0\noom_kill {oom_kills}\n")
    os.kill(os.getpid(), signal.SIGKILL)
