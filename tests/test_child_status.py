"""An isolated child's exit status, read by several threads at once (worker/isolation.py
`_LockedPopen`): CPython's forkserver handle reads the status from a pipe without a
lock, so a second reader met the pipe's end and recorded 255, and a SIGSEGV read as
"exited with status 255" (a CI failure of tests/acceptance/test_isolation.py)."""

from __future__ import annotations

import os
import signal
import threading
from multiprocessing.connection import wait

from sluice.worker.isolation import _Process

TRIALS = 20  # a plain forkserver handle got a wrong status in 7 trials of 40 here
READERS = 8


def crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def read_together(child: _Process) -> list[int | None]:
    """The child's exit status as READERS threads read it at the same moment."""
    together = threading.Barrier(READERS)
    seen: list[int | None] = []

    def read() -> None:
        together.wait()
        seen.append(child.exitcode)

    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    return seen


def test_threads_that_ask_a_dead_childs_status_together_all_read_its_signal() -> None:
    for _ in range(TRIALS):
        child = _Process(target=crash, daemon=True)
        child.start()
        assert wait([child.sentinel], 30)
        assert read_together(child) == [-signal.SIGSEGV] * READERS
        assert child.exitcode == -signal.SIGSEGV
