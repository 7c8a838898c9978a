"""The app the chaos harness runs in real `sluice worker` processes.

Every execution is written to an append-only journal, one file per worker process in
the directory named by SLUICE_CHAOS_JOURNAL, so the harness can audit after the fact
what ran where and when, whatever was killed:

    start <task_id> <attempt> <unix time>
    end <task_id> <attempt> <unix time> ok|fail

Each line is one `os.write` on an O_APPEND descriptor: it reaches the kernel before the
handler goes on, so a SIGKILL can cut an execution but never a line already written.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import sluice

app = sluice.App("chaos")

# Fast retries, so failing-once tasks come back at once; the harness registers the same.
RETRY = sluice.RetryPolicy(max_attempts=5, base_s=0.05, min_backoff_s=0.0, cap_s=0.2)

_lock = threading.Lock()
_fd: int | None = None


class FailOnce(Exception):
    """What a failing-once task raises on its first attempt."""


def journal(*fields: object) -> None:
    global _fd
    if _fd is None:
        with _lock:
            if _fd is None:
                directory = Path(os.environ.get("SLUICE_CHAOS_JOURNAL", "."))
                path = directory / f"journal-{os.getpid()}.log"
                _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, (" ".join(str(f) for f in fields) + "\n").encode())


@app.task(retry=RETRY)
def work(ctx: sluice.TaskContext, n: int, ms: int, fail_once: bool = False) -> dict[str, int]:
    """A little real work: hash some bytes, then wait out the rest of `ms` milliseconds,
    so a kill lands mid-task. Fails its first attempt when `fail_once` is set."""
    journal("start", ctx.task_id, ctx.attempt, repr(time.time()))
    deadline = time.monotonic() + ms / 1000
    digest = hashlib.blake2b(n.to_bytes(8, "big"))
    for _ in range(200):
        digest.update(digest.digest())
    left = deadline - time.monotonic()
    if left > 0:
        time.sleep(left)
    if fail_once and ctx.attempt == 1:
        journal("end", ctx.task_id, ctx.attempt, repr(time.time()), "fail")
        raise FailOnce(f"task {n} fails its first attempt")
    journal("end", ctx.task_id, ctx.attempt, repr(time.time()), "ok")
    return {"n": n, "attempt": ctx.attempt, "pid": os.getpid()}
