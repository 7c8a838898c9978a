"""The SQLite backend's fair-order and lease reads (a part of `SQLiteStore`): start tags
given after promotion, the virtual clock, chains, the leases a (pool) worker holds and
whose task each is, tasks claimed for a worker by another node, and hand-backs."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import msgspec

from ...model import ClaimedTask
from ..base import Held
from .queries import Q
from .writes import _event, _fair_order

if TYPE_CHECKING:
    from ..writer import Writer


class SQLiteFairness:
    _writer: Writer

    async def _read(self, query: str, params: Any = ()) -> list[Any]:
        raise NotImplementedError

    async def retag(self, tags: list[tuple[str, float]]) -> None:
        if tags:
            params = [{"id": task_id, "stag": stag} for task_id, stag in tags]
            await self._writer.submit(lambda c: c.executemany(Q["retag"], params))

    async def list_leases(self, prefix: str) -> list[tuple[str, str, float]]:
        rows = await self._read(Q["list_leases"], {"prefix": prefix})
        return [(r[0], r[1], float(r[2])) for r in rows]

    async def ready_backlog(self) -> dict[int, int]:
        return {int(part): int(n) for part, n in await self._read(Q["ready_backlog"])}

    async def tenant_backlog(self, tenant_id: str) -> dict[int, int]:
        rows = await self._read(Q["tenant_backlog"], {"tenant_id": tenant_id})
        return {int(part): int(n) for part, n in rows}

    async def get_claimed(
        self, tenant_id: str, worker: str, task_ids: list[str]
    ) -> list[ClaimedTask]:
        ids = msgspec.json.encode(task_ids).decode()
        params = {"tenant_id": tenant_id, "worker": worker, "ids": ids}
        rows = sorted(await self._read(Q["get_claimed"], params), key=_fair_order)
        return [ClaimedTask(*r) for r in rows]

    async def task_tenant(self, task_id: str) -> str | None:
        rows = await self._read(Q["task_tenant"], {"id": task_id})
        return str(rows[0][0]) if rows else None

    async def fair_clock(self) -> float | None:
        rows = await self._read(Q["fair_clock"])
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def last_tag(self, tenant_id: str, functions: list[str]) -> float | None:
        params = {"tenant_id": tenant_id, "functions": msgspec.json.encode(functions).decode()}
        rows = await self._read(Q["last_tag"], params)
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def release_tasks(
        self, tenant_id: str, worker: str, held: list[Held], now: float
    ) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            released = []
            for task_id, attempt, dispatched_at in held:
                params = {"tenant_id": tenant_id, "id": task_id, "attempt": attempt,
                          "dispatched_at": dispatched_at, "worker": worker, "now": now}  # fmt: skip
                row = conn.execute(Q["release_task"], params).fetchone()
                if row is not None:
                    _event(conn, row[0], task_id, now, "handed_back", worker)
                    released.append(task_id)
            return released

        return await self._writer.submit(op)

    async def leased_to(self, tenant_id: str, worker: str) -> list[Held]:
        rows = await self._read(Q["leased_to"], {"tenant_id": tenant_id, "worker": worker})
        return [(r[0], r[1], r[2]) for r in rows]
