"""When a function's tasks were held at a limit: the `held` stage of the waterfall.

The dispatcher says, claim by claim, whether a function's claim came back short because
of a limit (a rate, a concurrency cap, a tenant's limits or reserve, an AIMD room) or
not. Those marks make episodes per (tenant, function); a claimed task's held time is the
part of its wait (ready → dispatched) that overlaps them. While nothing was ever held,
stamping a claim costs one truth test.

An episode stays open while the marks keep coming (a held claim is tried again whenever
the limit may allow one more: a rate's next start, a slot freed); one not marked again
for STALE_S ends where it was last seen (the limit was lifted, or the function stopped
being claimed under it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import msgspec

from ..model import ClaimedTask

STALE_S = 2.0
KEPT = 8  # ended episodes kept per function
HORIZON_S = 3600.0  # older ones are dropped: a task that waited longer is rare


class Holds:
    def __init__(self) -> None:
        self._open: dict[tuple[str, str], list[float]] = {}  # key -> [start, last seen]
        self._ended: dict[tuple[str, str], deque[tuple[float, float]]] = {}

    def held(self, tenant_id: str, functions: Iterable[str], now: float) -> None:
        for function in functions:
            key = (tenant_id, function)
            episode = self._open.get(key)
            if episode is None or now - episode[1] > STALE_S:
                if episode is not None:
                    self._end(key, episode[0], episode[1])
                self._open[key] = [now, now]
            else:
                episode[1] = now

    def free(self, tenant_id: str, functions: Iterable[str], now: float) -> None:
        if not self._open:
            return
        for function in functions:
            episode = self._open.pop((tenant_id, function), None)
            if episode is not None:
                self._end((tenant_id, function), episode[0], min(now, episode[1] + STALE_S))

    def _end(self, key: tuple[str, str], start: float, end: float) -> None:
        ended = self._ended.setdefault(key, deque(maxlen=KEPT))
        ended.append((start, end))
        while ended and ended[0][1] < end - HORIZON_S:
            ended.popleft()

    def stamp(self, tasks: list[ClaimedTask], now: float) -> list[ClaimedTask]:
        """The tasks, each with the seconds of its wait that its function was held."""
        if not (self._open or self._ended) or not tasks:
            return tasks
        out = []
        for task in tasks:
            key = (task.tenant_id, task.function)
            episodes = list(self._ended.get(key, ()))
            episode = self._open.get(key)
            if episode is not None:
                episodes.append((episode[0], min(now, episode[1] + STALE_S)))
            if not episodes:
                out.append(task)
                continue
            since = task.ready_at if task.ready_at is not None else task.created_at
            until = task.dispatched_at
            held = sum(max(0.0, min(e, until) - max(s, since)) for s, e in episodes)
            out.append(msgspec.structs.replace(task, held_s=round(held, 6)) if held else task)
        return out
