"""The cluster bus on PostgreSQL LISTEN/NOTIFY (ALGORITHMS.md §6.1 "Wake-ups").

Hints are sent from their own connection, never inside a task transaction: a
transaction that issued NOTIFY takes a global lock at commit, which would serialise
every submit. Hints are coalesced: repeats of the same hint within one flush are sent
once, and a flush happens at most every `FLUSH_S`, so a stream of ten thousand submits a
second costs about twenty NOTIFY statements. One LISTEN connection per node; when it
drops, the handler gets ("resync", "") after reconnecting, since hints were missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from ..bus import Handler

log = logging.getLogger("sluice.bus")

CHANNEL = "sluice"
FLUSH_S = 0.05
MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8,000 bytes and more
RECONNECT_S = 1.0
CLOSE_TIMEOUT_S = 2.0
# Hints a dispatch across nodes waits on (engine/asks.py): sent at once, not after the
# coalescing pause.
URGENT = frozenset({"ask", "assigned"})


class PgBus:
    local = False  # other nodes end tasks too, and a hint from them may be lost

    def __init__(self, dsn: str, node_id: str) -> None:
        self.dsn = dsn
        self.node_id = node_id
        self._pending: dict[tuple[str, str], None] = {}  # ordered set
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._sending = False
        self._tasks: list[asyncio.Task[None]] = []
        self._handler: Handler | None = None
        self.sent = 0  # NOTIFY payloads sent, for tests and metrics

    async def start(self, handler: Handler) -> None:
        self._handler = handler
        listening = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen(listening), name="bus-listen"),
            asyncio.create_task(self._send(), name="bus-send"),
        ]
        await listening.wait()

    async def stop(self) -> None:
        # Hints published just before the stop (an answer to another node's ask, a
        # cancel) still go out, if the database answers within a moment.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_TIMEOUT_S
        while self._tasks and (self._pending or self._sending) and loop.time() < deadline:
            self._wake.set()
            self._urgent.set()
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def publish(self, kind: str, data: str) -> None:
        self._pending[(kind, data)] = None
        self._wake.set()
        if kind in URGENT:
            self._urgent.set()

    def _receive(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, _, rest = payload.partition("|")
        if origin == self.node_id or self._handler is None:
            return
        kind, _, data = rest.partition("|")
        try:
            self._handler(kind, data)
        except Exception:
            log.exception("bus hint %s failed", kind)

    async def _listen(self, listening: asyncio.Event) -> None:
        first = True
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("bus: cannot listen (%s); retrying", exc)
                listening.set()  # start anyway: the polls cover for the bus
                await asyncio.sleep(RECONNECT_S)
                continue
            try:
                await conn.add_listener(CHANNEL, self._receive)
                listening.set()
                if not first and self._handler is not None:
                    self._handler("resync", "")
                first = False
                while not conn.is_closed():
                    await asyncio.sleep(RECONNECT_S)
                    with contextlib.suppress(asyncpg.PostgresError, OSError):
                        await conn.execute("SELECT 1")  # notices a dead socket
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=CLOSE_TIMEOUT_S)

    async def _send(self) -> None:
        conn: Any = None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                self._urgent.clear()
                hints, self._pending = list(self._pending), {}
                payloads = _pack(self.node_id, hints)
                self._sending = True
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn)
                    await conn.execute(
                        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, payloads
                    )
                    self.sent += len(payloads)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("bus: %d hints lost (%s)", len(payloads), exc)
                    conn = None
                finally:
                    self._sending = False
                # Coalesce what comes in the next FLUSH_S, unless it is urgent.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), FLUSH_S)
                self._urgent.clear()
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=CLOSE_TIMEOUT_S)


def _pack(node_id: str, hints: list[tuple[str, str]]) -> list[str]:
    """One payload per hint kind, data joined by newlines, split below the size limit."""
    by_kind: dict[str, list[str]] = {}
    for kind, data in hints:
        by_kind.setdefault(kind, []).append(data)
    payloads = []
    for kind, items in by_kind.items():
        head = f"{node_id}|{kind}|"
        chunk: list[str] = []
        size = len(head)
        for item in items:
            if chunk and size + len(item) + 1 > MAX_PAYLOAD:
                payloads.append(head + "\n".join(chunk))
                chunk, size = [], len(head)
            chunk.append(item)
            size += len(item) + 1
        payloads.append(head + "\n".join(chunk))
    return payloads
