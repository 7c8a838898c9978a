"""Subscriptions in SQLite: the functions a topic's events (`POST /v1/events/{topic}`) fan
out to."""

from __future__ import annotations

import sqlite3

from ...model import SubscriptionRow
from .database import SQLiteDatabase
from .queries import Q


class SQLiteSubscriptions(SQLiteDatabase):
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
