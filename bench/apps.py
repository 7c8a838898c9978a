"""The handlers the benchmarks run: no-ops, so the figures measure Sluice itself."""

from __future__ import annotations

import sluice

app = sluice.App("bench")


@app.task
async def noop(i: int = 0) -> None:
    return None


@app.task
def noop_sync(i: int = 0) -> None:
    """A plain function, what most users write: the drain's handler."""
    return None


SHAVED_RATE = 500.0
SHAVED_BURST = 50


@app.task(rate=SHAVED_RATE, burst=SHAVED_BURST)
async def shaved(i: int = 0) -> None:
    """A no-op behind a rate limit: the peak-shaving scenario."""
    return None


@app.task
async def hold(ms: float = 10.0) -> None:
    """A task that takes `ms` of wall time without using the CPU: the noisy-neighbour
    scenario's pool drains at most slots / ms."""
    import asyncio

    await asyncio.sleep(ms / 1000)


@app.task
async def nap(seconds: float = 0.5) -> None:
    """Half a second of wall time without CPU: the autoscaling scenario's task."""
    import asyncio

    await asyncio.sleep(seconds)


# `make bench-capture` (bench/capture.py): two workers side by side, each serving one
# app, so each serves only its own copy of the same no-op.
left = sluice.App("bench-left")
right = sluice.App("bench-right")


@left.task
async def noop_left(i: int = 0) -> None:
    return None


@right.task
async def noop_right(i: int = 0) -> None:
    return None


@app.task
async def blob(data: str = "") -> int:
    """A task whose payload is large (`make bench-payloads`): its size is the cost."""
    return len(data)
