"""The SQLite backend's database (DESIGN §5 "Storage"): its files, one writer thread that
group-commits (writer.py), a small pool of read connections, and checkpoints on a thread
of their own. Each noun's part of `SQLiteStore` builds on `SQLiteDatabase`.

WAL, `synchronous=NORMAL` by default, `BEGIN IMMEDIATE` for every write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .schema import migrate
from .writer import Writer

READ_THREADS = 2
CHECKPOINT_INTERVAL_S = 1.0
# A WAL is reused from its start once a checkpoint caught up, but its file keeps its
# largest size: large payloads under load grew one to 1 GB. Past WAL_LIMIT_BYTES the
# checkpoint thread truncates it (a TRUNCATE checkpoint holds new writes back while it
# copies what is left, so it runs only then), and a reset WAL is cut to that size.
WAL_LIMIT_BYTES = 64 * 1024 * 1024
GIL_SWITCH_S = 0.0005
SMALL_OP = 8  # rows a write may touch and still run inline when the writer is idle
CACHE_KIB = 64 * 1024  # per connection; the default 2 MiB thrashes on batches of 1,000
# A new database's page size. A commit writes each page it changed to the WAL whole, and
# a task row changes a page in each of its five b-trees (the row, its id, the per-tenant
# listing and the two ready orders): with SQLite's default 4 KiB pages one submit wrote
# 28.6 KiB of WAL and its commit took 52 µs; with 2 KiB pages 17 KiB and 36 µs. Rows stay
# on their page up to about 2,000 bytes (larger payloads live in `payloads` anyway), and
# batches of 1,000 rows insert as fast (bench/RESULTS.md, 2026-12-05). An existing
# database keeps the page size it was made with (changing it takes a VACUUM).
PAGE_SIZE = 2048
DIR_MODE = 0o700
FILE_MODE = 0o600


class SQLiteDatabase:
    backend = "sqlite"

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.wal_limit = WAL_LIMIT_BYTES
        # With synchronous=NORMAL a commit does not wait for the disk, so small writes may
        # run inline when the writer is idle (see writer.py).
        self._writer = Writer(self._connect_writer, inline_small=self.synchronous == "NORMAL")
        self._readers = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sluice-sqlite-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sluice-sqlite-checkpoint", daemon=True
        )

    def _connect(self) -> sqlite3.Connection:
        # 256 compiled statements: the named queries (about 125) and bulk.py's batch
        # inserts (at most 45), so a batch never pushes a hot query out.
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        create_private(self.path)
        conn = self._connect()
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before WAL: only a new file takes it
        conn.execute("PRAGMA journal_mode = WAL")
        # Checkpoints run on their own thread (below), never inside a commit on the hot path.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA busy_timeout = 0")  # writer.py's _begin waits, in finer steps
        conn.execute(f"PRAGMA journal_size_limit = {self.wal_limit}")
        migrate(conn)
        return conn

    def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints every second: they never block the writer or readers. A
        WAL past its limit is checkpointed to the end and truncated."""
        conn = self._connect()
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL_S):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        # Meanwhile no write runs inline on the event loop (writer.py): a commit may wait
        # for the checkpoint's locks.
        self._writer.checkpointing.set()
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._writer.catch_up()  # the frames written meanwhile, so the WAL starts over
            try:
                size = os.path.getsize(f"{self.path}-wal")
            except OSError:
                return
            if size > self.wal_limit:
                with contextlib.suppress(sqlite3.OperationalError):  # busy: the next second
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._writer.checkpointing.clear()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._read_conns.append(conn)
        return conn

    async def _read(self, query: str, params: Any = ()) -> list[Any]:
        def run() -> list[Any]:
            return self._reader().execute(query, params).fetchall()

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    def schema_version(self) -> int:
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    async def open(self) -> None:
        # The writer and reader threads need the GIL between SQLite calls; at the default
        # 5 ms switch interval a busy event loop starves them (a bulk verb slowed 100x).
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
        await asyncio.get_running_loop().run_in_executor(None, self._writer.start)
        self._checkpointer.start()

    async def close(self) -> None:
        self._stopping.set()
        if self._checkpointer.is_alive():
            self._checkpointer.join()
        await asyncio.get_running_loop().run_in_executor(None, self._writer.close)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()


def create_private(path: Path) -> None:
    """Make the missing folders of `path` and the empty file, owner-only (they hold webhook
    and target secrets and key hashes); an existing file and folders are left as the
    operator set them. SQLite gives the -wal and -shm files it makes the database's mode."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
