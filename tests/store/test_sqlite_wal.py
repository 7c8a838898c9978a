"""The SQLite WAL stays bounded under large payloads: past its limit the checkpoint
thread truncates it (issue 20 point 8: 5,000 tasks of 64 KiB grew a WAL to 1 GB)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import msgspec

from sluice.store.sqlite import SQLiteStore
from sluice.store.sqlite.database import PAGE_SIZE
from tests.store.test_contract import NOW, claim, finish, new_task, submit

LIMIT = 1024 * 1024


def size(path: str) -> int:
    return os.path.getsize(path)


async def test_a_wal_past_its_limit_is_truncated_by_the_checkpoint(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sluice.db")
    store.wal_limit = 1 << 40  # while writing: the checkpoint thread's passive ones only
    await store.open()
    try:
        tenant = (await store.create_tenant("t", NOW)).id
        payload = msgspec.json.encode({"args": ["x" * 64 * 1024], "kwargs": {}})
        ids = []
        for _ in range(4):  # 40 tasks of 64 KiB, each written at submit, claim and finish
            tasks = [msgspec.structs.replace(new_task(), payload=payload) for _ in range(10)]
            ids += await submit(store, tenant, *tasks)
            claimed = await claim(store, tenant)
            await store.finish_attempts([finish(t) for t in claimed], NOW)
        wal = f"{store.path}-wal"
        assert size(wal) > LIMIT  # what the passive checkpoints alone leave

        # The checkpoint below, not the thread's at the same moment (its TRUNCATE would
        # then find the WAL busy and leave it): the thread stops first.
        store._stopping.set()
        store._checkpointer.join()
        store.wal_limit = LIMIT
        conn = sqlite3.connect(store.path)
        try:
            store.checkpoint(conn)
        finally:
            conn.close()
        assert size(wal) <= LIMIT
        for task_id in ids:  # nothing was lost on the way
            task = await store.get_task(tenant, task_id)
            assert task is not None and task.state == "succeeded"
    finally:
        await store.close()


def page_size(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


async def test_a_new_database_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """A commit writes every page it changed to the WAL whole: a new database is made with
    PAGE_SIZE pages (smaller than SQLite's 4 KiB, so a submit writes less). A database
    made before keeps its page size and works as it did."""
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("CREATE TABLE before_sluice (x)")  # the page size is fixed from here
    conn.close()
    for path, expected in ((tmp_path / "new.db", PAGE_SIZE), (old, 4096)):
        store = SQLiteStore(path)
        await store.open()
        try:
            tenant = (await store.create_tenant("t", NOW)).id
            (task_id,) = await submit(store, tenant, new_task())
            task = await store.get_task(tenant, task_id)
            assert task is not None and task.state == "ready"
        finally:
            await store.close()
        assert page_size(path) == expected
    assert PAGE_SIZE < 4096
