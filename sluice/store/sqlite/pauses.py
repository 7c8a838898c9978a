"""The SQLite backend's pause rules and held tasks (a part of `SQLiteStore`)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import msgspec

from ...model import PauseRow, SubscriptionRow
from .queries import Q

if TYPE_CHECKING:
    from ..writer import Writer


class SQLitePauses:
    _writer: Writer

    async def _read(self, query: str, params: Any = ()) -> list[Any]:
        raise NotImplementedError

    async def create_pause(
        self, tenant_id: str, pause_id: str, selector: bytes, now: float
    ) -> None:
        params = {"tenant_id": tenant_id, "id": pause_id, "selector": selector.decode(), "now": now}
        await self._writer.submit(lambda c: c.execute(Q["insert_pause"], params), small=True)

    async def list_pauses(self, tenant_id: str | None) -> list[PauseRow]:
        rows = await self._read(Q["list_pauses"], {"tenant_id": tenant_id})
        return [PauseRow(t, i, s.encode(), at) for t, i, s, at in rows]

    async def delete_pause(self, tenant_id: str, pause_id: str) -> bytes | None:
        params = {"tenant_id": tenant_id, "id": pause_id}

        def op(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(Q["delete_pause"], params).fetchone()
            return None if row is None else str(row[0]).encode()

        return await self._writer.submit(op, small=True)

    async def hold_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        params = {"tenant_id": tenant_id, "ids": msgspec.json.encode(task_ids).decode()}

        def op(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute(Q["hold_tasks"], params).fetchall()]

        return await self._writer.submit(op, small=len(task_ids) <= 8)

    async def unhold_tasks(
        self, tenant_id: str, task_ids: list[str], now: float
    ) -> list[tuple[str, str]]:
        params = {"tenant_id": tenant_id, "ids": msgspec.json.encode(task_ids).decode(),
                  "now": now}  # fmt: skip

        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return [(r[0], r[1]) for r in conn.execute(Q["unhold_tasks"], params).fetchall()]

        return await self._writer.submit(op, small=len(task_ids) <= 8)

    # -- event subscriptions (small, so they live beside the pause rules) ----------

    async def put_subscription(
        self, tenant_id: str, name: str, topic: str, config: bytes, now: float
    ) -> None:
        params = {"tenant_id": tenant_id, "name": name, "topic": topic,
                  "config": config.decode(), "now": now}  # fmt: skip
        await self._writer.submit(lambda c: c.execute(Q["put_subscription"], params), small=True)

    async def list_subscriptions(
        self, tenant_id: str, topic: str | None = None
    ) -> list[SubscriptionRow]:
        rows = await self._read(Q["list_subscriptions"], {"tenant_id": tenant_id, "topic": topic})
        return [SubscriptionRow(n, t, c.encode(), at) for n, t, c, at in rows]

    async def delete_subscription(self, tenant_id: str, name: str) -> bool:
        params = {"tenant_id": tenant_id, "name": name}

        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(Q["delete_subscription"], params).fetchone() is not None

        return await self._writer.submit(op, small=True)

    # -- quotas ----------------------------------------------------------------------

    async def put_quota(self, tenant_id: str, config: bytes) -> None:
        params = {"tenant_id": tenant_id, "config": config.decode()}
        await self._writer.submit(lambda c: c.execute(Q["put_quota"], params), small=True)

    async def list_quotas(self) -> list[tuple[str, bytes]]:
        return [(r[0], str(r[1]).encode()) for r in await self._read(Q["list_quotas"])]

    async def get_quota(self, tenant_id: str) -> bytes | None:
        rows = await self._read(Q["get_quota"], {"tenant_id": tenant_id})
        return str(rows[0][0]).encode() if rows else None

    async def count_queued(self, tenant_id: str) -> int:
        rows = await self._read(Q["count_queued"], {"tenant_id": tenant_id})
        return int(rows[0][0])
