"""The app the acceptance tests run in real `sluice worker` processes."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import sluice
from sluice.worker.context import TaskContext

app = sluice.App("acceptance")
MARKERS = Path(os.environ.get("SLUICE_TEST_MARKERS", "."))


def announce(path: Path, text: str) -> None:
    """Write a marker whole before it exists: a test that waits for the file and then
    reads it must never read it half-written (write_text creates it empty first)."""
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(text)
    os.replace(temporary, path)


@app.task
def multiply(a: int, b: int) -> int:
    return a * b


@app.task
def stubborn(ctx: TaskContext, name: str) -> dict[str, int]:
    """The first attempt announces itself (and logs) and then hangs until its process is
    killed."""
    print(f"attempt {ctx.attempt} of {name} in {os.getpid()}")
    announce(MARKERS / f"{name}.{ctx.attempt}", str(os.getpid()))
    if ctx.attempt == 1:
        threading.Event().wait()  # hang until the process is killed
    return {"attempt": ctx.attempt, "pid": os.getpid()}


@app.task
def sleepy(ctx: TaskContext, name: str, seconds: float) -> int:
    """Long enough to outlive a server restart; journals each start."""
    with open(MARKERS / f"{name}.runs", "a") as journal:
        journal.write(f"{ctx.attempt}\n")
    threading.Event().wait(seconds)
    return ctx.attempt


@app.task
def chatty(lines: int) -> int:
    """Logs and prints, for `sluice logs`."""
    for i in range(lines):
        logging.getLogger("workload").warning("line %d", i)
    print("printed\x1b[31m red")  # a control character, escaped when shown
    return lines


@app.task
def gated(ctx: TaskContext, name: str) -> int:
    """Journals its start, then runs until the test creates the marker `{name}.go` (at
    most 2 minutes): it outlives whatever the test does meanwhile (a redeploy, a stop),
    however slow the machine is, where a task of fixed length might end first."""
    with open(MARKERS / f"{name}.runs", "a") as journal:
        journal.write(f"{ctx.attempt}\n")
    gate = MARKERS / f"{name}.go"
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        threading.Event().wait(0.05)
    return ctx.attempt


@app.task
def marathon(ctx: TaskContext, name: str, steps: int, step_s: float, gates: list[int]) -> int:
    """A long task in compressed time: `steps` steps of `step_s`, reporting progress at
    each (through `sluice.current_task()` too, as a library deep in the handler would).
    At each step in `gates` it waits (running, holding its lease) until the test creates
    the marker `{name}.gate{step}`: the test restarts the server or redeploys the worker
    there, so each happens while the task runs, however slow the machine is."""
    with open(MARKERS / f"{name}.runs", "a") as journal:
        journal.write(f"{ctx.attempt} {os.getpid()}\n")
    for step in range(1, steps + 1):
        if step in gates:
            gate = MARKERS / f"{name}.gate{step}"
            for _ in range(1200):  # at most 2 minutes
                if gate.exists() or ctx.wait(0.1):
                    break
        if ctx.wait(step_s):
            return -step  # cancelled: never in the test
        sluice.current_task().progress(step, steps, f"step {step} of {steps}")
    ctx.progress(steps, steps, "done")
    return steps
