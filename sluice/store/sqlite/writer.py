"""One writer thread that owns the SQLite write connection and group-commits.

Callers hand it operations (functions of a connection); it runs everything pending in
one `BEGIN IMMEDIATE` transaction, commits, then resolves each caller's future. When
nothing else is pending an operation commits at once; under load the batch grows by
itself, so there is one commit per batch instead of one per task.

A small operation that finds the writer idle runs on the caller's thread instead: at
idle, the two thread hand-offs (and their wake-up latency) cost more than the commit.
The first of a turn of the event loop runs at once (a lone submit waits for nothing);
the others asked for in the same turn run together at its end, in one commit (up to
MAX_ROWS_INLINE rows): 32 producers whose submits arrive together make two commits on
the loop, not 32. If an inline batch fails or meets a lock, nothing of it is committed
and the writer thread runs it instead.
That is only done when a commit does not wait for the disk (`inline_small`), and not
while a checkpoint runs (`checkpointing`): a commit can then wait tens of milliseconds
for a lock, which inline would stop the event loop for (a 34 ms stall every few seconds
on SQLite, seen in bench/run.py's delayed tasks); on the writer thread only that write
waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

MAX_OPS_PER_COMMIT = 2000
# Rows the small writes of one loop turn may touch and still commit together on the loop
# (256 single submits, or 4 claims of 64); past it they go to the writer thread.
MAX_ROWS_INLINE = 256


class _Turn:
    """The small writes asked for in one turn of an event loop after its first."""

    __slots__ = ("items", "rows")

    def __init__(self) -> None:
        self.items: list[_Pending] = []
        self.rows = 0


class _Pending:
    __slots__ = ("future", "loop", "op")

    def __init__(self, op: Op, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]):
        self.op = op
        self.loop = loop
        self.future = future


BUSY_WAIT_S = 5.0  # how long a write waits for a lock before it fails


def _begin(conn: sqlite3.Connection, patient: bool = True) -> bool:
    """BEGIN IMMEDIATE, retried every 0.2-1 ms while the database is locked, for up to
    BUSY_WAIT_S. An inline write (not `patient`) never waits on the event loop: False,
    and it goes to the writer thread. The connection has no busy timeout: SQLite's own
    handler sleeps 1, 2, 5, 10, then 15 ms between tries, so a write behind a
    checkpoint's 25 ms lock waited 33 ms."""
    deadline = time.monotonic() + BUSY_WAIT_S
    pause = 0.0002
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            if not patient:
                return False
        time.sleep(pause)
        pause = min(0.001, pause * 2)


def _fail(items: list[_Pending], exc: BaseException) -> None:
    for item in items:
        if not item.future.done():
            item.future.set_exception(exc)


def _settle(items: list[_Pending], outcomes: list[tuple[bool, Any]]) -> None:
    for item, (ok, value) in zip(items, outcomes, strict=True):
        if item.future.done():
            continue
        if ok:
            item.future.set_result(value)
        else:
            item.future.set_exception(value)


class Writer:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], *, inline_small: bool = False
    ) -> None:
        self._connect = connect
        self._inline_small = inline_small
        self._busy = threading.Lock()  # held while a batch runs, on whichever thread
        self._count_lock = threading.Lock()
        self._unsettled = 0  # batches committed by the thread, not yet settled on the loop
        self._queue: deque[_Pending] = deque()
        # Small writes asked for in this turn of each event loop, to run inline at its end.
        self._turn: dict[asyncio.AbstractEventLoop, _Turn] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="sluice-sqlite-writer", daemon=True)
        self._started = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._error: BaseException | None = None
        self.checkpointing = threading.Event()  # set by the database's checkpoint thread
        self._catch_up = False  # a checkpoint to run on this connection (catch_up)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    def submit(
        self, op: Callable[[sqlite3.Connection], T], *, small: bool = False, rows: int = 1
    ) -> asyncio.Future[T]:
        """`op`'s outcome, once committed. `small`: it may run inline on the loop (it
        touches about `rows` rows)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        item = _Pending(op, loop, future)
        turn = self._turn.get(loop)
        if small and self._inline_small and self._may_inline():
            if turn is None:  # the turn's first: at once (a lone submit waits for no turn)
                turn = self._turn[loop] = _Turn()
                loop.call_soon(self._end_turn, loop)
                if self._inline([item]):
                    return future
            elif turn.rows + rows <= MAX_ROWS_INLINE:  # more this turn: together, at its end
                turn.items.append(item)
                turn.rows += rows
                return future
        with self._cond:
            if self._closing:
                raise RuntimeError("store is closed")
            start = not self._queue
            if turn is not None and turn.items:  # asked for first: they commit first
                self._queue.extend(turn.items)
                turn.items = []
            self._queue.append(item)
            if start:
                self._cond.notify()
        return future

    def _may_inline(self) -> bool:
        # Not while a committed batch still waits to be settled: an inline op must never
        # be seen to finish before an operation that committed ahead of it.
        return (
            not self._queue
            and not self._closing
            and not self._unsettled
            and not self.checkpointing.is_set()
            and self._conn is not None
        )

    def _inline(self, batch: list[_Pending]) -> bool:
        """Run `batch` in one commit on this thread, if the writer is idle and the
        database not locked; False if nothing was committed."""
        if not (self._may_inline() and self._busy.acquire(blocking=False)):
            return False
        try:
            # Again, under the lock: the thread counts a batch unsettled (and a closing
            # thread lets the connection go) while it holds it.
            conn, outcomes = self._conn, None
            if conn is not None and self._may_inline():
                outcomes = self._run_batch(conn, batch, patient=False)
        finally:
            self._busy.release()
        if outcomes is None:
            return False
        _settle(batch, outcomes)
        return True

    def _end_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """The small writes asked for during one turn of `loop` after its first, in one
        commit on the loop (32 producers' submits: two commits, not 32); else the thread's."""
        turn = self._turn.pop(loop, None)
        batch = turn.items if turn is not None else []
        try:
            if not batch or self._inline(batch):
                return
        except BaseException as exc:  # (a failed ROLLBACK): its callers hear of it
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        with self._cond:
            if self._closing:
                _fail(batch, RuntimeError("store is closed"))
                return
            start = not self._queue
            self._queue.extend(batch)
            if start:
                self._cond.notify()

    def catch_up(self) -> None:
        """The checkpoint thread copied the WAL into the database while writes went on:
        the writer checkpoints once more between two batches, for the few frames written
        meanwhile. With every frame copied and no write in between, the next commit
        starts the WAL over from its beginning; without it, under a steady load the WAL
        never started over and grew until a TRUNCATE checkpoint held writes back for
        25-30 ms (every 6-7 s at 10 MB/s)."""
        with self._cond:
            self._catch_up = True
            self._cond.notify()

    def _settled(self) -> None:
        # Queued behind the batch's _settle calls, so it runs once they all have.
        with self._count_lock:
            self._unsettled -= 1

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        try:
            self._conn = self._connect()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        conn = self._conn
        assert conn is not None
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self._catch_up:
                    self._cond.wait()
                if not self._queue and self._closing:
                    break
                catch_up, self._catch_up = self._catch_up, False
                n = min(len(self._queue), MAX_OPS_PER_COMMIT)
                batch = [self._queue.popleft() for _ in range(n)]
            if catch_up:
                with self._busy, contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            if not batch:
                continue
            with self._busy:
                outcomes = self._run_batch(conn, batch)
                assert outcomes is not None  # patient: it waits out a lock
                with self._count_lock:
                    self._unsettled += 1
            by_loop: dict[asyncio.AbstractEventLoop, tuple[list[_Pending], list[Any]]] = {}
            for item, outcome in zip(batch, outcomes, strict=True):
                items, outs = by_loop.setdefault(item.loop, ([], []))
                items.append(item)
                outs.append(outcome)
            for loop, (items, outs) in by_loop.items():
                # A closed loop raises RuntimeError: nobody is waiting there any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, items, outs)
            try:
                batch[0].loop.call_soon_threadsafe(self._settled)
            except RuntimeError:
                self._settled()
        with self._busy:  # an inline op may be using the connection right now
            self._conn = None
            conn.close()

    @staticmethod
    def _run_batch(
        conn: sqlite3.Connection, batch: list[_Pending], patient: bool = True
    ) -> list[tuple[bool, Any]] | None:
        """Each operation's outcome; None when not `patient` and nothing was committed:
        the database was locked, or an operation failed (the writer thread runs them
        again, each alone if need be, waiting out any lock off the event loop)."""
        try:
            if not _begin(conn, patient):
                return None
        except Exception as exc:  # locked past BUSY_WAIT_S, or the disk: each fails
            return [(False, exc) for _ in batch]
        try:
            outs = [(True, item.op(conn)) for item in batch]
            conn.execute("COMMIT")
            return outs
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if not patient:
                return None
        # One operation failed: run each alone so the others still commit.
        results: list[tuple[bool, Any]] = []
        for item in batch:
            try:
                _begin(conn)
                out = item.op(conn)
                conn.execute("COMMIT")
                results.append((True, out))
            except Exception as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                results.append((False, exc))
        return results
