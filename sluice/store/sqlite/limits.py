"""The SQLite backend's limited claims (a part of `SQLiteStore`)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import msgspec

from ...model import ClaimedTask
from ..base import ClaimRequest, LimitedClaim
from ..limits import after, room
from .queries import Q
from .writes import _fair_order

if TYPE_CHECKING:
    from ..writer import Writer


class SQLiteLimits:
    _writer: Writer

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

        def op(conn: sqlite3.Connection) -> LimitedClaim:
            running = None
            if max_concurrency is not None:
                running = conn.execute(
                    Q["count_running"], {"tenant_id": request.tenant_id, "function": function}
                ).fetchone()[0]
            tat = None
            if rate is not None:
                row = conn.execute(Q["get_rate_limit"], {"key": key}).fetchone()
                tat = None if row is None else float(row[0])
            want, by_rate = room(request.limit, running, max_concurrency, tat, now, rate, burst)
            rows: list[Any] = []
            if want > 0:
                params = {
                    "tenant_id": request.tenant_id, "worker": request.worker,
                    "functions": msgspec.json.encode([function]).decode(), "limit": want,
                    "now": now, "lease_until": now + lease_s,
                }  # fmt: skip
                rows = conn.execute(Q["claim_tasks"], params).fetchall()
                rows.sort(key=_fair_order)
            retry_at = None
            if rate is not None:
                new, next_start = after(tat, now, rate, burst, len(rows))
                if rows:
                    conn.execute(Q["set_rate_limit"], {"key": key, "tat": new})
                if by_rate:
                    retry_at = next_start
            tasks = [ClaimedTask(*r[:-1]) for r in rows]
            return LimitedClaim(tasks, retry_at, drained=want > 0 and len(rows) < want)

        return await self._writer.submit(op, small=request.limit <= 64)

    async def acquire_lease(self, name: str, holder: str, now: float, ttl_s: float) -> bool:
        params = {"name": name, "holder": holder, "now": now, "until": now + ttl_s}

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(Q["acquire_lease"], params).fetchone()
            return row is not None and row[0] == holder

        return await self._writer.submit(op, small=True)
