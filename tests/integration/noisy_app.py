"""The shared pool's code for tests/integration/test_noisy_neighbour.py, run by a real
`sluice worker` process."""

from __future__ import annotations

import asyncio

import sluice

HOLD_S = 0.01  # each task; 8 slots drain at most 800 a second

app = sluice.App("neighbours")


@app.task
async def work(key: str) -> None:
    await asyncio.sleep(HOLD_S)
