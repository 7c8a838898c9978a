"""Subscriptions in PostgreSQL: the functions a topic's events (`POST /v1/events/{topic}`)
fan out to."""

from __future__ import annotations

from ...model import SubscriptionRow
from .database import PostgresDatabase
from .queries import Q


class PostgresSubscriptions(PostgresDatabase):
    async def put_subscription(
        self, tenant_id: str, name: str, topic: str, config: bytes, now: float
    ) -> None:
        await self.pool.execute(Q["put_subscription"], tenant_id, name, topic, config, now)

    async def list_subscriptions(
        self, tenant_id: str, topic: str | None = None
    ) -> list[SubscriptionRow]:
        rows = await self.pool.fetch(Q["list_subscriptions"], tenant_id, topic)
        return [SubscriptionRow(n, t, bytes(c), at) for n, t, c, at in rows]

    async def delete_subscription(self, tenant_id: str, name: str) -> bool:
        return await self.pool.fetchval(Q["delete_subscription"], tenant_id, name) is not None
