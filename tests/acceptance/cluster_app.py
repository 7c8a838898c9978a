"""The app the cluster acceptance test runs in real `sluice worker` processes.

Each execution is journaled, one file per worker process in the directory named by
SLUICE_TEST_JOURNAL, so the test can audit what ran where and when:

    start <task_id> <attempt> <unix time>
    end <task_id> <attempt> <unix time>

Each line is one `os.write` on an O_APPEND descriptor, so a line that was written is
never lost to a kill, and lines of concurrent handlers never interleave.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import sluice

app = sluice.App("cluster")
RUN_S = 0.003  # long enough that two overlapping runs of one task would show

_fd: int | None = None


def journal(*fields: object) -> None:
    global _fd
    if _fd is None:  # handlers are async: one event loop thread, no lock needed
        directory = Path(os.environ.get("SLUICE_TEST_JOURNAL", "."))
        path = directory / f"journal-{os.getpid()}.log"
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, (" ".join(str(f) for f in fields) + "\n").encode())


@app.task
async def tick(ctx: sluice.TaskContext, n: int) -> int:
    journal("start", ctx.task_id, ctx.attempt, repr(time.time()))
    await asyncio.sleep(RUN_S)
    journal("end", ctx.task_id, ctx.attempt, repr(time.time()))
    return n
