"""Write steps and row shapes shared by the PostgreSQL store's operations: the group
insert of plain submits, migrations, the column arrays that `unnest()` opens, fenced
finishes judged one by one, events and deletes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from ...model import Finish, NewTask
from ..base import DUPLICATE, STALE
from .queries import MIGRATIONS, Q

if TYPE_CHECKING:
    from . import PostgresStore

Conn = Any  # asyncpg.Connection or a pool's proxy; asyncpg ships no type hints
MIGRATION_LOCK = 7_364_001  # pg_advisory_xact_lock key: one node migrates at a time
GROUP_INSERTS_IN_FLIGHT = 2  # concurrent group commits of plain submits
GROUP_INSERT_MAX = 64  # submit requests per group commit (each up to 1,000 tasks)


class _GroupInsert:
    """Group commit for plain (unkeyed) submits: while one INSERT is in flight, the
    submits that arrive wait and then go together as one statement and one commit.
    Nothing waits on a timer, so a lone submit goes at once; under load the batches
    grow by themselves. Each caller is answered only after its rows committed."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._queue: list[tuple[str, list[NewTask], float, asyncio.Future[None]]] = []
        self._in_flight = 0
        self._drains: set[asyncio.Task[None]] = set()

    async def insert(self, tenant_id: str, tasks: list[NewTask], now: float) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((tenant_id, tasks, now, done))
        if self._in_flight < GROUP_INSERTS_IN_FLIGHT:
            self._in_flight += 1
            drain = asyncio.create_task(self._drain())
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        await done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:GROUP_INSERT_MAX], self._queue[GROUP_INSERT_MAX:]
                by_tenant: dict[str, list[tuple[list[NewTask], float]]] = {}
                for tenant_id, tasks, now, _ in batch:
                    by_tenant.setdefault(tenant_id, []).append((tasks, now))
                try:
                    async with self._store.pool.acquire() as conn:
                        if len(by_tenant) == 1:  # one statement: atomic without BEGIN/COMMIT
                            ((tenant_id, parts),) = by_tenant.items()
                            await conn.execute(Q["insert_task"], tenant_id, *_columns_many(parts))
                        else:
                            async with conn.transaction():
                                for tenant_id, parts in by_tenant.items():
                                    await conn.execute(
                                        Q["insert_task"], tenant_id, *_columns_many(parts)
                                    )
                except BaseException as exc:
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for *_, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._in_flight -= 1


async def _keep_session(_conn: Conn) -> None:
    """Pool connections go back as they are. asyncpg's default reset (RESET ALL,
    UNLISTEN *, CLOSE ALL, unlock advisory locks) is one more round trip per use, and
    this store never changes session state: no SET, no LISTEN (the bus has its own
    connections), advisory locks only per transaction. An open transaction is still
    rolled back by asyncpg before this runs."""


async def migrate(dsn: str) -> int:
    """Apply the numbered migrations not applied yet, under an advisory lock so nodes
    starting together migrate once. Returns the schema version."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = await conn.fetchval("SELECT COALESCE(max(version), 0) FROM schema_migrations")
            for number, sql in MIGRATIONS:
                if number > version:
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", number
                    )
                    version = number
        return int(version)
    finally:
        await conn.close()


def _columns_many(parts: Sequence[tuple[Sequence[NewTask], float]]) -> list[list[Any]]:
    """insert_task's column arrays for several submits, each with its own `now`."""
    columns = [_columns(tasks, now) for tasks, now in parts]
    return [[v for c in columns for v in c[i]] for i in range(16)]


def _columns(tasks: Sequence[NewTask], now: float) -> list[list[Any]]:
    """insert_task's column arrays ($2..$17)."""
    return [
        [t.id for t in tasks],
        [t.function for t in tasks],
        [t.payload for t in tasks],
        [t.state for t in tasks],
        [t.priority for t in tasks],
        [t.stag for t in tasks],
        [t.key for t in tasks],
        [t.tags for t in tasks],
        [t.max_attempts for t in tasks],
        [t.timeout_s for t in tasks],
        [t.run_at for t in tasks],
        [t.expires_at for t in tasks],
        [now] * len(tasks),
        [now if t.state == "ready" else None for t in tasks],
        [t.retry for t in tasks],
        [t.partition for t in tasks],
    ]


def _columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


def _finish_columns(finishes: Sequence[Finish], now: float) -> list[list[Any]]:
    rows = []
    for f in finishes:
        terminal = f.next_state in ("succeeded", "dead", "cancelled")
        rows.append((
            f.task_id, f.tenant_id, f.attempt, f.worker, f.next_state,
            f.finished_at if terminal else None, f.result,
            f.error_message if f.next_state != "succeeded" else None,
            f.run_at, now if f.next_state == "ready" else None, int(f.throttled),
        ))  # fmt: skip
    return _columns_of(rows, 11)


def _attempt_columns(finishes: Sequence[Finish]) -> list[list[Any]]:
    rows = [
        (f.tenant_id, f.task_id, f.attempt, f.worker, f.dispatched_at, f.started_at,
         f.finished_at, f.outcome, f.error_type, f.error_message, f.traceback)
        for f in finishes
    ]  # fmt: skip
    return _columns_of(rows, 11)


async def _judge_refused(conn: Conn, f: Finish, now: float) -> str:
    """A finish that did not hold the lease: a resend of what is stored, or stale."""
    held = await conn.fetchval(Q["get_attempt_worker"], f.tenant_id, f.task_id, f.attempt)
    if held is not None and held == f.worker:
        return DUPLICATE
    await _events(
        conn, now, [(f.tenant_id, f.task_id, "stale_result", f"attempt {f.attempt} by {f.worker}")]
    )
    return STALE


async def _events(
    conn: Conn, now: float, events: Sequence[tuple[str, str, str, str | None]]
) -> None:
    if events:
        tenants, ids, kinds, details = _columns_of(events, 4)
        await conn.execute(Q["insert_event"], tenants, ids, now, kinds, details)


async def _delete(conn: Conn, tenant_id: str, ids: list[str]) -> None:
    await conn.execute(Q["delete_attempts"], tenant_id, ids)
    await conn.execute(Q["delete_events"], tenant_id, ids)
    await conn.execute(Q["delete_task"], tenant_id, ids)


def _fair_order(row: Any) -> tuple[int, float, str]:
    return (-row[7], row[-1], row[1])  # priority first, then start tag, then id
