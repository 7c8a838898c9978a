"""Limited claims in PostgreSQL: a claim of one tenant's tasks under concurrency caps and
rates (store/limits.py decides how many), held cluster-wide.

One transaction per claim: an advisory lock per limit key (taken in key order), so
nodes claiming under the same limits take turns, count the running tasks, claim, and
move the rates on.
"""

from __future__ import annotations

from typing import Any

from ...model import SHARED, ClaimedTask
from ..base import ClaimRequest, LimitedClaim
from ..limits import Limit, after_all, room_all
from .attempts import fair_order
from .database import PostgresDatabase
from .queries import Q


class PostgresLimits(PostgresDatabase):
    async def claim_limited(
        self, request: ClaimRequest, limits: list[Limit], now: float, lease_s: float
    ) -> LimitedClaim:
        async with self.fast.acquire() as conn, conn.transaction():
            # Every key in one order, so two claims sharing keys cannot deadlock.
            for key in sorted({lim.key for lim in limits}):
                await conn.execute(Q["lock_limit"], key)
            running: list[int | None] = []
            tats: list[float | None] = []
            for lim in limits:
                count = None
                if lim.max_concurrency is not None and lim.pool:
                    count = await conn.fetchval(
                        Q["count_pool_running"], lim.function, list(lim.settling)
                    )
                elif lim.max_concurrency is not None:
                    count = await conn.fetchval(
                        Q["count_running"], request.tenant_id, lim.function, list(lim.settling)
                    )
                running.append(count)
                tat = None
                if lim.rate is not None:
                    tat = await conn.fetchval(Q["get_rate_limit"], lim.key)
                tats.append(tat)
            want, by_rate = room_all(request.limit, limits, running, tats, now)
            rows: list[Any] = []
            if want > 0:
                parts = None if request.partitions is None else list(request.partitions)
                args = [request.tenant_id, list(request.functions), now, want, request.worker,
                        now + lease_s, parts]  # fmt: skip
                if request.tenant_id == SHARED:  # a pool function's tenants, fair order
                    shared = [*args[:-1], list(request.exclude), parts]
                    rows = list(await conn.fetch(Q["claim_shared"], *shared))
                else:
                    rows = list(await conn.fetch(Q["claim_tasks"], *args))
                rows.sort(key=fair_order)
            states, next_start = after_all(limits, tats, now, len(rows))
            if rows:
                for key, tat in states:
                    await conn.execute(Q["set_rate_limit"], key, tat)
        tasks = [ClaimedTask(*r) for r in rows]
        retry_at = next_start if by_rate else None
        return LimitedClaim(tasks, retry_at, drained=want > 0 and len(rows) < want)

    async def count_running(self, tenant_id: str, function: str | None) -> int:
        return int(await self.pool.fetchval(Q["count_running"], tenant_id, function, []))

    async def rate_states(self, keys: list[str]) -> dict[str, float]:
        rows = await self.pool.fetch(Q["rate_states"], keys)
        return {str(key): float(tat) for key, tat in rows}
