"""What the console shows live, computed once per interval whatever the number of
viewers (OBSERVABILITY.md §1.2: "the dashboard must not be the incident").

`Shared.get(key, make)` answers every viewer of one scope (a tenant, or the admin's
view of all) from the same figures for LIVE_S: the first request in an interval
computes them, the others that arrive meanwhile await that same computation. Nothing
here reads the tasks table: the figures come from the backlog snapshot, the rollup and
the node's memory.

`AimdHistory` keeps the adaptive limits of pools and HTTP targets over the last hour,
sampled every SAMPLE_S while the console is in use, for the functions page's charts.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..engine.node import Node

LIVE_S = 2.0  # one computation per scope per this many seconds
SAMPLE_S = 5.0
HISTORY_POINTS = 720  # an hour at SAMPLE_S


class Shared:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._made: dict[str, tuple[float, asyncio.Future[Any]]] = {}
        self.computed = 0  # how many times anything was computed (a test reads it)

    async def get(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        now = self._clock()
        held = self._made.get(key)
        if held is not None and now - held[0] < LIVE_S:  # a failed one is forgotten below
            return await asyncio.shield(held[1])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._made[key] = (now, future)
        self.computed += 1
        try:
            value = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the next viewer computes again
            del self._made[key]
            raise
        future.set_result(value)
        return value


class AimdHistory:
    """(time, limit, in flight) per (tenant, function) of every pool and target limit."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.points: dict[tuple[str, str], deque[tuple[float, float, int]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def sample(self) -> None:
        node = self._node
        now = node.clock.now()
        limits = [(key, aimd) for key, aimd in node.adaptive.limits.items()]
        limits += [(key, conn.aimd) for key, conn in node.targets.items()]
        for key, aimd in limits:
            ring = self.points.setdefault(key, deque(maxlen=HISTORY_POINTS))
            ring.append((now, aimd.limit, aimd.inflight))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)

    def of(self, tenant_id: str) -> dict[str, list[tuple[float, float, int]]]:
        return {f: list(ring) for (t, f), ring in self.points.items() if t == tenant_id}
