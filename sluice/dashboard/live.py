"""What the console shows live, computed once per interval whatever the number of
viewers (OBSERVABILITY.md §1.2: "the dashboard must not be the incident").

`Shared.get(key, make)` answers every viewer of one scope (a tenant, or the admin's
view of all) from the same figures for LIVE_S: the first request in an interval
computes them, the others that arrive meanwhile await that same computation. Nothing
here reads the tasks table: the figures come from the backlog snapshot, the rollup and
the node's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

LIVE_S = 2.0  # one computation per scope per this many seconds


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
