"""A CPU-bound plain handler for the spreading test: it holds its process's GIL."""

from __future__ import annotations

import os
import time

import sluice

app = sluice.App("spread")


@app.task
def crunch(seconds: float) -> dict[str, float]:
    """Spin the CPU for `seconds`; say which process did it, and when."""
    began = time.time()
    x = 0
    while time.time() - began < seconds:
        x += 1
    return {"pid": os.getpid(), "began": began, "ended": time.time()}
