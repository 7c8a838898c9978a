"""Limited claims in SQLite: a claim of one tenant's tasks under concurrency caps and
rates (store/limits.py decides how many). The one writer serialises them."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ...model import SHARED, ClaimedTask
from ..base import ClaimRequest, LimitedClaim
from ..limits import Limit, after_all, room_all
from .attempts import SMALL_CLAIM, fair_order, parts
from .database import SQLiteDatabase
from .queries import Q


class SQLiteLimits(SQLiteDatabase):
    async def claim_limited(
        self, request: ClaimRequest, limits: list[Limit], now: float, lease_s: float
    ) -> LimitedClaim:
        def op(conn: sqlite3.Connection) -> LimitedClaim:
            running: list[int | None] = []
            tats: list[float | None] = []
            for lim in limits:
                count = None
                if lim.max_concurrency is not None:
                    counted = {
                        "tenant_id": request.tenant_id,
                        "function": lim.function,
                        "settling": msgspec.json.encode(lim.settling).decode(),
                    }
                    if lim.pool:
                        del counted["tenant_id"]
                    query = Q["count_pool_running"] if lim.pool else Q["count_running"]
                    count = conn.execute(query, counted).fetchone()[0]
                running.append(count)
                tat = None
                if lim.rate is not None:
                    row = conn.execute(Q["get_rate_limit"], {"key": lim.key}).fetchone()
                    tat = None if row is None else float(row[0])
                tats.append(tat)
            want, by_rate = room_all(request.limit, limits, running, tats, now)
            rows: list[Any] = []
            if want > 0:
                params = {
                    "tenant_id": request.tenant_id, "worker": request.worker,
                    "functions": msgspec.json.encode(request.functions).decode(),
                    "limit": want, "now": now, "lease_until": now + lease_s,
                    "parts": parts(request.partitions),
                }  # fmt: skip
                if request.tenant_id == SHARED:  # a pool function's tenants, fair order
                    params["exclude"] = msgspec.json.encode(request.exclude).decode()
                    rows = conn.execute(Q["claim_shared"], params).fetchall()
                else:
                    rows = conn.execute(Q["claim_tasks"], params).fetchall()
                rows.sort(key=fair_order)
            states, next_start = after_all(limits, tats, now, len(rows))
            if rows:
                for key, tat in states:
                    conn.execute(Q["set_rate_limit"], {"key": key, "tat": tat})
            tasks = [ClaimedTask(*r) for r in rows]
            retry_at = next_start if by_rate else None
            return LimitedClaim(tasks, retry_at, drained=want > 0 and len(rows) < want)

        return await self._writer.submit(op, small=request.limit <= SMALL_CLAIM, rows=request.limit)

    async def count_running(self, tenant_id: str, function: str | None) -> int:
        params = {"tenant_id": tenant_id, "function": function, "settling": "[]"}
        return int((await self._read(Q["count_running"], params))[0][0])

    async def rate_states(self, keys: list[str]) -> dict[str, float]:
        rows = await self._read(Q["rate_states"], {"keys": msgspec.json.encode(keys).decode()})
        return {str(key): float(tat) for key, tat in rows}
