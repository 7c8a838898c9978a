"""The handlers the benchmarks run: no-ops, so the figures measure Sluice itself."""

from __future__ import annotations

import sluice

app = sluice.App("bench")


@app.task
async def noop(i: int = 0) -> None:
    return None
