"""The outbox in PostgreSQL: result notifications written with the ends of tasks, their
deliveries, and the receivers disabled for failing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ...model import Finish, Notification, WebhookEndpoint
from ..notifications import Ended, Hooks, ended_rows, outbox_rows
from .database import Conn, PostgresDatabase
from .queries import Q

Row = tuple[str, str, str, str, str, int, str]


class PostgresNotifications(PostgresDatabase):
    async def due_notifications(self, now: float, limit: int) -> list[Notification]:
        return [_notification(r) for r in await self._fetch(Q["due_notifications"], now, limit)]

    async def settle_notification(
        self, n: Notification, state: str, next_at: float | None, now: float,
        status: int | None, answer: str | None, log: str | None = None,
    ) -> bool:  # fmt: skip
        done = await self.pool.execute(
            Q["settle_notification"], n.id, n.tries, state, next_at, now, status, answer, log
        )
        return str(done).endswith(" 1")

    async def list_notifications(self, tenant_id: str, task_id: str) -> list[Notification]:
        rows = await self._fetch(Q["list_notifications"], tenant_id, task_id)
        return [_notification(r) for r in rows]

    async def disable_endpoint(self, tenant_id: str, url: str, now: float, reason: str) -> None:
        await self.pool.execute(Q["disable_endpoint"], tenant_id, url, now, reason)

    async def enable_endpoint(self, tenant_id: str, url: str, now: float) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(Q["enable_endpoint"], tenant_id, url, "enabled")
            if not str(done).endswith(" 1"):
                return False
            await conn.execute(Q["resume_notifications"], tenant_id, url, now)
            return True

    async def list_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        return [WebhookEndpoint(*r) for r in await self._fetch(Q["list_endpoints"], tenant_id)]

    async def retrying_counts(self, tenant_id: str) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._fetch(Q["retrying_counts"], tenant_id)}

    async def get_webhook_secrets(self, tenant_id: str) -> tuple[list[str], float] | None:
        rows = await self._fetch(Q["get_webhook_secrets"], tenant_id)
        return (msgspec.json.decode(rows[0][0]), rows[0][1]) if rows else None

    async def set_webhook_secrets(self, tenant_id: str, secrets: list[str], now: float) -> None:
        encoded = msgspec.json.encode(secrets).decode()
        await self.pool.execute(Q["set_webhook_secrets"], tenant_id, encoded, now)


def _notification(r: Sequence[Any]) -> Notification:
    return Notification(*r)  # the columns in the struct's order


async def write_notices(conn: Conn, finishes: list[Finish], now: float) -> None:
    """The outbox rows of accepted finishes, in their transaction."""
    rows = [
        row
        for f in finishes
        if f.notify
        for row in outbox_rows(f.tenant_id, f.task_id, f.attempt, f.notify)
    ]
    await _insert(conn, rows, now)


async def write_ended(
    conn: Conn, hooks: Hooks, task_ids: list[str], event: str, now: float
) -> None:
    """The outbox rows of tasks a cancel, an expiry or the reaper just ended, in its
    transaction (every task's function looked up only when some function has receivers;
    otherwise only tasks with webhooks of their own, by the column)."""
    if not task_ids:
        return
    found = await conn.fetch(Q["notified_tasks"], task_ids, bool(hooks))
    ended: list[Ended] = [tuple(r) for r in found]  # type: ignore[misc]
    await _insert(conn, ended_rows(ended, hooks, event), now)


async def _insert(conn: Conn, rows: list[Row], now: float) -> None:
    if rows:
        columns = [list(c) for c in zip(*rows, strict=True)]
        await conn.execute(Q["insert_notification"], *columns, now)
