"""The outbox in PostgreSQL: result notifications written with the ends of tasks, their
deliveries, and the receivers disabled for failing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
        status: int | None, answer: str | None,
    ) -> bool:  # fmt: skip
        done = await self.pool.execute(
            Q["settle_notification"], n.id, n.tries, state, next_at, now, status, answer
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
    transaction (read only when some function has receivers)."""
    if not hooks or not task_ids:
        return
    ended: list[Ended] = [tuple(r) for r in await conn.fetch(Q["notified_tasks"], task_ids)]  # type: ignore[misc]
    await _insert(conn, ended_rows(ended, hooks, event), now)


async def _insert(conn: Conn, rows: list[Row], now: float) -> None:
    if rows:
        columns = [list(c) for c in zip(*rows, strict=True)]
        await conn.execute(Q["insert_notification"], *columns, now)
