"""`GET /v1/stats`: the calling tenant's own figures (engine/stats.py), never another's."""

from __future__ import annotations

from ..contract import Stats, StatsQuery
from .route import Call, Route


async def stats(call: Call) -> Stats:
    query: StatsQuery = call.query
    return await call.node.stats.read(call.tenant, query.minutes)


STATS_ROUTES = [
    Route("GET", "/v1/stats", "getStats",
          "The tenant's figures: tasks by state now, and counts per minute (submitted, "
          "started, ended by outcome, mean wait and run time)", stats, {200: Stats},
          query=StatsQuery, tags=("ops",)),
]  # fmt: skip
