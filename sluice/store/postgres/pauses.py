"""The PostgreSQL backend's pause rules and held tasks (a part of `PostgresStore`)."""

from __future__ import annotations

from typing import Any

from ...model import PauseRow, SubscriptionRow
from .queries import Q


class PostgresPauses:
    @property
    def pool(self) -> Any:
        raise NotImplementedError

    async def create_pause(
        self, tenant_id: str, pause_id: str, selector: bytes, now: float
    ) -> None:
        await self.pool.execute(Q["insert_pause"], tenant_id, pause_id, selector, now)

    async def list_pauses(self, tenant_id: str | None) -> list[PauseRow]:
        rows = await self.pool.fetch(Q["list_pauses"], tenant_id)
        return [PauseRow(t, i, bytes(s), at) for t, i, s, at in rows]

    async def delete_pause(self, tenant_id: str, pause_id: str) -> bytes | None:
        selector = await self.pool.fetchval(Q["delete_pause"], tenant_id, pause_id)
        return None if selector is None else bytes(selector)

    async def hold_tasks(self, tenant_id: str, task_ids: list[str]) -> list[str]:
        return [r[0] for r in await self.pool.fetch(Q["hold_tasks"], tenant_id, task_ids)]

    async def unhold_tasks(
        self, tenant_id: str, task_ids: list[str], now: float
    ) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(Q["unhold_tasks"], tenant_id, task_ids, now)
        return [(r[0], r[1]) for r in rows]

    # -- event subscriptions (small, so they live beside the pause rules) ----------

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

    # -- quotas ----------------------------------------------------------------------

    async def put_quota(self, tenant_id: str, config: bytes) -> None:
        await self.pool.execute(Q["put_quota"], tenant_id, config)

    async def list_quotas(self) -> list[tuple[str, bytes]]:
        return [(r[0], bytes(r[1])) for r in await self.pool.fetch(Q["list_quotas"])]

    async def get_quota(self, tenant_id: str) -> bytes | None:
        found = await self.pool.fetchval(Q["get_quota"], tenant_id)
        return None if found is None else bytes(found)

    async def count_queued(self, tenant_id: str) -> int:
        return int(await self.pool.fetchval(Q["count_queued"], tenant_id))
