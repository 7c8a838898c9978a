"""The outbox in SQLite: result notifications written with the ends of tasks, their
deliveries, and the receivers disabled for failing."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from ...model import Finish, Notification, WebhookEndpoint
from ..notifications import Ended, Hooks, ended_rows, outbox_rows
from .database import SQLiteDatabase
from .queries import Q

Row = tuple[str, str, str, str, str, int, str]


class SQLiteNotifications(SQLiteDatabase):
    async def due_notifications(self, now: float, limit: int) -> list[Notification]:
        rows = await self._read(Q["due_notifications"], {"now": now, "limit": limit})
        return [_notification(r) for r in rows]

    async def settle_notification(
        self, n: Notification, state: str, next_at: float | None, now: float,
        status: int | None, answer: str | None, log: str | None = None,
    ) -> bool:  # fmt: skip
        params = {"id": n.id, "tries": n.tries, "state": state, "next_at": next_at,
                  "now": now, "status": status, "answer": answer, "log": log}  # fmt: skip
        done = await self._writer.submit(lambda c: c.execute(Q["settle_notification"], params))
        return bool(done.rowcount)

    async def list_notifications(self, tenant_id: str, task_id: str) -> list[Notification]:
        params = {"tenant_id": tenant_id, "task_id": task_id}
        return [_notification(r) for r in await self._read(Q["list_notifications"], params)]

    async def disable_endpoint(self, tenant_id: str, url: str, now: float, reason: str) -> None:
        params = {"tenant_id": tenant_id, "url": url, "now": now, "reason": reason}
        await self._writer.submit(lambda c: c.execute(Q["disable_endpoint"], params))

    async def enable_endpoint(self, tenant_id: str, url: str, now: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            params = {"tenant_id": tenant_id, "url": url, "reason": "enabled", "now": now}
            if not conn.execute(Q["enable_endpoint"], params).rowcount:
                return False
            conn.execute(Q["resume_notifications"], params)
            return True

        return await self._writer.submit(op)

    async def list_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        rows = await self._read(Q["list_endpoints"], {"tenant_id": tenant_id})
        return [WebhookEndpoint(*r) for r in rows]

    async def retrying_counts(self, tenant_id: str) -> dict[str, int]:
        rows = await self._read(Q["retrying_counts"], {"tenant_id": tenant_id})
        return {url: count for url, count in rows}

    async def get_webhook_secrets(self, tenant_id: str) -> tuple[list[str], float] | None:
        rows = await self._read(Q["get_webhook_secrets"], {"tenant_id": tenant_id})
        return (msgspec.json.decode(rows[0][0]), rows[0][1]) if rows else None

    async def set_webhook_secrets(self, tenant_id: str, secrets: list[str], now: float) -> None:
        params = {"tenant_id": tenant_id, "secrets": msgspec.json.encode(secrets).decode(),
                  "now": now}  # fmt: skip
        await self._writer.submit(lambda c: c.execute(Q["set_webhook_secrets"], params))


def _notification(r: Sequence[Any]) -> Notification:
    return Notification(*r)  # the columns in the struct's order


def write_notices(conn: sqlite3.Connection, f: Finish, now: float) -> None:
    """A finish's outbox rows, in its transaction."""
    _insert(conn, outbox_rows(f.tenant_id, f.task_id, f.attempt, f.notify), now)


def write_ended(
    conn: sqlite3.Connection, hooks: Hooks, task_ids: list[str], event: str, now: float
) -> None:
    """The outbox rows of tasks a cancel, an expiry or the reaper just ended, in its
    transaction (every task's function looked up only when some function has receivers;
    otherwise only tasks with webhooks of their own, by the column)."""
    if not task_ids:
        return
    params = {"ids": msgspec.json.encode(task_ids).decode(), "all": bool(hooks)}
    ended: list[Ended] = [tuple(r) for r in conn.execute(Q["notified_tasks"], params)]  # type: ignore[misc]
    _insert(conn, ended_rows(ended, hooks, event), now)


def _insert(conn: sqlite3.Connection, rows: list[Row], now: float) -> None:
    if rows:
        conn.executemany(
            Q["insert_notification"],
            [
                {"id": i, "tenant_id": t, "task_id": k, "function": f, "event": e,
                 "attempt": a, "url": u, "now": now}
                for i, t, k, f, e, a, u in rows
            ],
        )  # fmt: skip
