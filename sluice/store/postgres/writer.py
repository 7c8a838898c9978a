"""The PostgreSQL group insert of plain (unkeyed) submits, and the column arrays of
`insert_task` that it, keyed submits and schedule fires send.

PostgreSQL groups concurrent commits itself, so there is no writer thread as in SQLite;
what is grouped here is the statements: while one INSERT is in flight, the submits that
arrive wait and then go together as one statement and one commit. Nothing waits on a
timer, so a lone submit goes at once; under load the batches grow by themselves. Each
caller is answered only after its rows committed.

The inserts have connections of their own, kept open (at most one per insert in flight),
not borrowed from the pool: a pool's acquire and release cost a lone submit about 30 µs
(the release is a shielded task, one more loop turn), and with the task that ran each
insert, 65 µs of the server's 240 µs a submit (bench/RESULTS.md, 2026-12-06). A lone
submit, the only one waiting, is inserted by its own caller, without a task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from ...errors import Unavailable
from ...model import NewTask
from .queries import Q

if TYPE_CHECKING:
    from .database import PostgresDatabase

GROUP_INSERTS_IN_FLIGHT = 2  # concurrent group commits of plain submits
GROUP_INSERT_MAX = 64  # submit requests per group commit (each up to 1,000 tasks)
APPLICATION_NAME = "sluice-inserts"  # how the inserts' connections show in pg_stat_activity
CLOSE_TIMEOUT_S = 5.0  # how long closing waits for inserts in flight before cutting them off
# A connection idle longer is closed rather than used (as asyncpg's pool does after 300 s):
# a NAT or proxy may have dropped it silently, and the next insert would hang on it.
IDLE_LIFETIME_S = 300.0

log = logging.getLogger("sluice.store")

_Item = tuple[str, list[NewTask], float, "asyncio.Future[None] | None"]


class GroupInsert:
    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database
        self._queue: list[_Item] = []
        self._in_flight = 0
        self._drains: set[asyncio.Task[None]] = set()
        self._idle: list[tuple[Any, float]] = []  # open connections no insert uses, since
        self._busy: set[Any] = set()  # connections an insert is using
        self._settled = asyncio.Event()  # set while no insert is in flight
        self._settled.set()
        self._closing = False
        self._cut_off = False  # closing gave up waiting: an insert still starting fails

    async def insert(self, tenant_id: str, tasks: list[NewTask], now: float) -> None:
        if self._closing:
            raise Unavailable("the server is stopping: submit again", retry_after_s=1)
        if not self._queue and self._in_flight < GROUP_INSERTS_IN_FLIGHT:
            # Alone: this caller writes its own rows. Cancelled, the caller gets no
            # answer and its connection is closed; the rows may still commit (the
            # statement may have reached the server), as at-least-once allows.
            self._begin()
            try:
                await self._write([(tenant_id, tasks, now, None)])
            finally:
                self._end()
                self._drain_later()
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((tenant_id, tasks, now, done))
        self._drain_later()
        await done

    def _begin(self) -> None:
        self._in_flight += 1
        self._settled.clear()

    def _end(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._settled.set()

    def _drain_later(self) -> None:
        if self._queue and self._in_flight < GROUP_INSERTS_IN_FLIGHT:
            self._begin()
            drain = asyncio.create_task(self._drain())
            self._drains.add(drain)
            drain.add_done_callback(self._drained)

    def _drained(self, drain: asyncio.Task[None]) -> None:
        # Here, not in the drain's own `finally`: a drain cancelled before its first step
        # never runs that.
        self._drains.discard(drain)
        self._end()

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:GROUP_INSERT_MAX], self._queue[GROUP_INSERT_MAX:]
            try:
                await self._write(batch)
            except Exception:  # each caller's future holds it
                continue

    async def _write(self, batch: list[_Item]) -> None:
        """Insert a batch's rows in one commit, then settle the callers' futures (a
        caller inserting its own rows has none: it is raised to)."""
        by_tenant: dict[str, list[tuple[list[NewTask], float]]] = {}
        for tenant_id, tasks, now, _ in batch:
            by_tenant.setdefault(tenant_id, []).append((tasks, now))
        try:
            conn = await self._connection()
            if self._cut_off:  # it took longer to connect than closing waited
                conn.terminate()
                raise _stopped()
            self._busy.add(conn)
            try:
                if len(batch) == 1 and len(batch[0][1]) == 1:  # a lone task
                    tenant_id, (task,), now, _ = batch[0]
                    await conn.execute(Q["insert_one"], *task_row(tenant_id, task, now))
                elif len(by_tenant) == 1:  # one statement: atomic without BEGIN/COMMIT
                    ((tenant_id, parts),) = by_tenant.items()
                    await conn.execute(Q["insert_task"], tenant_id, *_columns_many(parts))
                else:
                    async with conn.transaction():
                        for tenant_id, parts in by_tenant.items():
                            await conn.execute(Q["insert_task"], tenant_id, *_columns_many(parts))
            except BaseException as exc:
                # Refused, broken, or cancelled mid-query: a failure is rare (the rows are
                # plain), and after one the session may be in any state. Not used again.
                self._busy.discard(conn)
                conn.terminate()
                if self._cut_off and isinstance(exc, Exception):  # closing cut it off
                    raise _stopped() from exc
                raise
            self._busy.discard(conn)
            self._give(conn)
        except BaseException as exc:
            _fail(batch, exc if isinstance(exc, Exception) else _stopped())
            raise
        for *_, done in batch:
            if done is not None and not done.done():
                done.set_result(None)

    async def _connection(self) -> Any:
        now = time.monotonic()
        while self._idle:
            conn, since = self._idle.pop()
            if not conn.is_closed() and now - since < IDLE_LIFETIME_S:
                return conn
            conn.terminate()
        return await self._database.connect(application_name=APPLICATION_NAME)

    def _give(self, conn: Any) -> None:
        if self._closing or conn.is_closed():
            conn.terminate()
        else:
            self._idle.append((conn, time.monotonic()))

    async def close(self) -> None:
        """Refuse new inserts, wait up to CLOSE_TIMEOUT_S for those in flight (a stuck
        one must not keep a stopping node alive: it is cut off and fails), then close
        the connections."""
        self._closing = True
        try:
            await asyncio.wait_for(self._settled.wait(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            self._cut_off = True
            busy = list(self._busy)
            # Its insert fails, and its caller is told to submit again. Closing the socket
            # alone would leave the statement running on the server (a terminated
            # connection sends no cancel), to commit rows the caller then submits again.
            await self._end_backends([conn.get_server_pid() for conn in busy])
            for conn in busy:
                conn.terminate()
            drains = list(self._drains)
            for drain in drains:
                drain.cancel()
            await asyncio.gather(*drains, return_exceptions=True)
        queued, self._queue = self._queue, []
        _fail(queued, _stopped())  # left behind by a drain cut off
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            try:
                await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()

    async def _end_backends(self, pids: list[int]) -> None:
        if not pids:
            return
        try:
            await asyncio.wait_for(self._database.pool.execute(Q["end_backends"], pids),
                                   CLOSE_TIMEOUT_S)  # fmt: skip
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Best effort: the connections are cut off all the same.
            log.warning("could not end the server side of %d cut-off inserts: %s",
                        len(pids), exc)  # fmt: skip


def _fail(batch: list[_Item], exc: Exception) -> None:
    for *_, done in batch:
        if done is not None and not done.done():
            done.set_exception(exc)


def _stopped() -> Exception:
    return Unavailable("the server stopped before the submit was written: submit again",
                       retry_after_s=1)  # fmt: skip


def task_columns(tasks: Sequence[NewTask], now: float) -> list[list[Any]]:
    """insert_task's (and insert_keyed_task's) column arrays ($2..$20)."""
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
        [t.trace_parent for t in tasks],
        [t.trace_state for t in tasks],
        [t.webhooks for t in tasks],
    ]


def task_row(tenant_id: str, t: NewTask, now: float) -> tuple[Any, ...]:
    """insert_one's parameters: the tenant, then one task's insert_task columns."""
    return (
        tenant_id, t.id, t.function, t.payload, t.state, t.priority, t.stag, t.key, t.tags,
        t.max_attempts, t.timeout_s, t.run_at, t.expires_at, now,
        now if t.state == "ready" else None, t.retry, t.partition, t.trace_parent,
        t.trace_state, t.webhooks,
    )  # fmt: skip


def _columns_many(parts: Sequence[tuple[Sequence[NewTask], float]]) -> list[list[Any]]:
    """insert_task's column arrays for several submits, each with its own `now`."""
    columns = [task_columns(tasks, now) for tasks, now in parts]
    return [[v for c in columns for v in c[i]] for i in range(19)]
