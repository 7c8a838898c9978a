"""The PostgreSQL backend's limited claims (a part of `PostgresStore`).

One transaction per claim: the rate row is locked (`FOR UPDATE`, or an advisory lock
when the key has no row yet), so nodes claiming the same function take turns, count
the running tasks, claim, and move the rate on: the limits hold cluster-wide.
"""

from __future__ import annotations

from typing import Any

from ...model import ClaimedTask
from ..base import ClaimRequest, LimitedClaim
from ..limits import after, room
from .queries import Q


class PostgresLimits:
    @property
    def fast(self) -> Any:
        raise NotImplementedError

    async def claim_limited(
        self,
        request: ClaimRequest,
        rate: float | None,
        burst: int,
        max_concurrency: int | None,
        now: float,
        lease_s: float,
    ) -> LimitedClaim:
        (function,) = request.functions
        key = f"{request.tenant_id}:{function}"
        async with self.fast.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7364))", key)
            running = None
            if max_concurrency is not None:
                running = await conn.fetchval(Q["count_running"], request.tenant_id, function)
            tat = None
            if rate is not None:
                tat = await conn.fetchval(Q["get_rate_limit"], key)
            want, by_rate = room(request.limit, running, max_concurrency, tat, now, rate, burst)
            rows: list[Any] = []
            if want > 0:
                args = [request.tenant_id, [function], now, want, request.worker, now + lease_s]
                rows = list(await conn.fetch(Q["claim_tasks"], *args))
                rows.sort(key=lambda r: (-r[7], r[-1], r[1]))
            retry_at = None
            if rate is not None:
                new, next_start = after(tat, now, rate, burst, len(rows))
                if rows:
                    await conn.execute(Q["set_rate_limit"], key, new)
                if by_rate:
                    retry_at = next_start
        tasks = [ClaimedTask(*r[:-1]) for r in rows]
        return LimitedClaim(tasks, retry_at, drained=want > 0 and len(rows) < want)
