"""PostgreSQL's group insert of plain submits (store/postgres/writer.py) on connections of
its own: a lone submit reuses one kept-open connection, concurrent submits use at most
GROUP_INSERTS_IN_FLIGHT, a connection that dies or is abandoned mid-query is replaced,
and closing the store closes them. The connections are found in pg_stat_activity by
their application name."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from sluice.errors import Unavailable
from sluice.store.postgres import PostgresStore, writer
from sluice.store.postgres.writer import APPLICATION_NAME, GROUP_INSERTS_IN_FLIGHT
from tests import pg
from tests.harness import wait_for
from tests.store.test_contract import NOW, new_task

TENANT = "t1"


@pytest.fixture
async def opened() -> AsyncIterator[tuple[PostgresStore, asyncpg.Connection]]:
    """An open store and an outside connection to its database."""
    await pg.require_postgres()
    async with pg.fresh_database() as dsn:
        store = PostgresStore(dsn, pool_size=4)
        await store.open()
        outside = await asyncpg.connect(dsn)
        try:
            yield store, outside
        finally:
            await outside.close()
            await store.close()


async def insert_pids(outside: asyncpg.Connection) -> list[int]:
    rows = await outside.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = $1 ORDER BY pid",
        APPLICATION_NAME,
    )
    return [r[0] for r in rows]


async def count_tasks(outside: asyncpg.Connection) -> int:
    return int(await outside.fetchval("SELECT count(*) FROM tasks"))


async def waiting_on_locks(outside: asyncpg.Connection) -> int:
    return int(await outside.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = $1 AND wait_event_type = 'Lock'", APPLICATION_NAME,
    ))  # fmt: skip


async def without(outside: asyncpg.Connection, pid: int) -> list[int]:
    """The insert connections once `pid` is no longer among them (a backend's entry
    outlives its client's closing a moment)."""
    pids: list[int] = []

    async def gone() -> bool:
        pids[:] = await insert_pids(outside)
        return pid not in pids

    await wait_for(gone)
    return pids


@contextlib.asynccontextmanager
async def tasks_locked(store: PostgresStore) -> AsyncIterator[None]:
    """Every insert waits while this holds the task table. On a connection of its own:
    inside a transaction, `outside` would read pg_stat_activity as it was when the
    transaction began."""
    locker = await asyncpg.connect(store.dsn)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE tasks IN EXCLUSIVE MODE")
            yield
    finally:
        await locker.close()


async def refuses_then_reopens(store: PostgresStore) -> None:
    """A closed store answers a submit 503 (the client submits again); it is opened
    again for the fixture to close."""
    with pytest.raises(Unavailable):
        await store.submit_tasks(TENANT, [new_task()], NOW)
    await store.open()


async def test_lone_submits_reuse_one_kept_connection(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    store, outside = opened
    await store.submit_tasks(TENANT, [new_task()], NOW)
    first = await insert_pids(outside)
    assert len(first) == 1
    for _ in range(20):
        await store.submit_tasks(TENANT, [new_task()], NOW)
    assert await insert_pids(outside) == first
    assert await count_tasks(outside) == 21


async def test_concurrent_submits_share_at_most_the_inserts_in_flight(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    store, outside = opened
    submits = [[new_task() for _ in range(1 + i % 3)] for i in range(60)]
    results = await asyncio.gather(*(store.submit_tasks(TENANT, s, NOW) for s in submits))
    assert [[r.id for r in rs] for rs in results] == [[t.id for t in s] for s in submits]
    assert all(r.created for rs in results for r in rs)
    assert await count_tasks(outside) == sum(len(s) for s in submits)
    assert 1 <= len(await insert_pids(outside)) <= GROUP_INSERTS_IN_FLIGHT


async def test_a_terminated_connection_is_replaced(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    store, outside = opened
    await store.submit_tasks(TENANT, [new_task()], NOW)
    (old,) = await insert_pids(outside)
    assert await outside.fetchval("SELECT pg_terminate_backend($1)", old)
    # The store learns of it when it next reads the socket: at most one submit fails (as
    # one on a pooled connection would), and the next ones go on a new connection.
    failures, committed = 0, []
    deadline = time.monotonic() + 10
    while len(committed) < 3:
        assert time.monotonic() < deadline, "submits did not recover"
        task = new_task()
        try:
            await store.submit_tasks(TENANT, [task], NOW)
        except (asyncpg.InterfaceError, asyncpg.InternalClientError, asyncpg.PostgresError,
                OSError):  # fmt: skip
            failures += 1
        else:
            committed.append(task.id)
    assert failures <= 1
    assert len(await without(outside, old)) == 1
    assert await count_tasks(outside) == 1 + len(committed)


async def test_a_submit_cancelled_mid_insert_leaves_its_connection(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    store, outside = opened
    await store.submit_tasks(TENANT, [new_task()], NOW)
    (old,) = await insert_pids(outside)
    async with tasks_locked(store):
        blocked = asyncio.ensure_future(store.submit_tasks(TENANT, [new_task()], NOW))
        await wait_for(lambda: waiting_on_locks(outside))  # the insert waits on the lock
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
    # The abandoned connection is not used again; the next submit opens another.
    task = new_task()
    (result,) = await store.submit_tasks(TENANT, [task], NOW)
    assert result.created and result.id == task.id
    await without(outside, old)  # its backend ends once the statement does
    assert await outside.fetchval("SELECT count(*) FROM tasks WHERE id = $1", task.id) == 1


async def test_closing_the_store_closes_the_insert_connections(
    opened: tuple[PostgresStore, asyncpg.Connection],
) -> None:
    store, outside = opened
    await asyncio.gather(*(store.submit_tasks(TENANT, [new_task()], NOW) for _ in range(20)))
    assert await insert_pids(outside)
    await store.close()

    async def closed() -> bool:  # the server ends a closed session a moment later
        return not await insert_pids(outside)

    await wait_for(closed)
    await refuses_then_reopens(store)


async def test_closing_cuts_off_an_insert_that_is_stuck(
    opened: tuple[PostgresStore, asyncpg.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, outside = opened
    monkeypatch.setattr(writer, "CLOSE_TIMEOUT_S", 0.5)
    async with tasks_locked(store):
        stuck = [asyncio.ensure_future(store.submit_tasks(TENANT, [new_task()], NOW))
                 for _ in range(4)]  # fmt: skip

        async def two_wait() -> bool:  # 2 inserts wait on the lock, 2 submits queue
            return await waiting_on_locks(outside) == GROUP_INSERTS_IN_FLIGHT

        await wait_for(two_wait)
        cut = await insert_pids(outside)
        began = time.monotonic()
        await store.close()
        assert time.monotonic() - began < 5  # not held until the lock goes (no limit)
        outcomes = await asyncio.wait_for(asyncio.gather(*stuck, return_exceptions=True), 10)
        assert all(isinstance(o, Unavailable) for o in outcomes), outcomes

        async def ended() -> bool:  # their backends too, not just their sockets
            return not set(cut) & set(await insert_pids(outside))

        await wait_for(ended)
    # Once the lock goes, nothing of what the callers were told to submit again commits.
    assert await count_tasks(outside) == 0
    await refuses_then_reopens(store)


async def test_a_connection_idle_too_long_is_not_used(
    opened: tuple[PostgresStore, asyncpg.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, outside = opened
    await store.submit_tasks(TENANT, [new_task()], NOW)
    (old,) = await insert_pids(outside)
    monkeypatch.setattr(writer, "IDLE_LIFETIME_S", 0.0)
    await store.submit_tasks(TENANT, [new_task()], NOW)
    assert len(await without(outside, old)) == 1  # the stale one was neither used nor kept
    assert await count_tasks(outside) == 2
