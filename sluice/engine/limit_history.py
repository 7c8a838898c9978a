"""The adaptive (AIMD) limits of worker pools and HTTP targets over the last hour, as
the console's functions page draws them (OBSERVABILITY.md §1.3 "AIMD limit over time").

Each node samples its own limits every SAMPLE_S into a ring per (tenant, function): a
few floats per limit, in memory, nothing stored. (An AIMD limit is each node's own.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

SAMPLE_S = 5.0
POINTS = 720  # an hour at SAMPLE_S
Key = tuple[str, str]


class Limit(Protocol):
    @property
    def limit(self) -> float: ...

    @property
    def inflight(self) -> int: ...


class LimitHistory:
    def __init__(self, now: Callable[[], float], limits: Callable[[], Iterable[tuple[Key, Limit]]]):
        self._now = now
        self._limits = limits
        self.points: dict[Key, deque[tuple[float, float, int]]] = {}

    def sample(self) -> None:
        now = self._now()
        for key, aimd in self._limits():
            ring = self.points.get(key)
            if ring is None:
                ring = self.points[key] = deque(maxlen=POINTS)
            ring.append((now, aimd.limit, aimd.inflight))

    def of(self, tenant_id: str) -> dict[str, list[tuple[float, float, int]]]:
        """(time, limit, in flight) of each limited function of the tenant."""
        return {f: list(ring) for (t, f), ring in self.points.items() if t == tenant_id}
