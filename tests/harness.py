"""Shared test machinery: a real server node on a free port, real workers, and waiting
for conditions with deadlines (never for durations)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import uvicorn

from sluice.api import create_app
from sluice.api.door import FrontDoor
from sluice.api.limits import Limits
from sluice.api.serving import server_config
from sluice.config import Settings
from sluice.engine.node import Node
from sluice.worker.app import App
from sluice.worker.runtime import Worker
from tests import pg

FAST = {
    "lease_s": 2.0,
    "heartbeat_s": 0.5,
    "reap_interval_s": 0.2,
    "promote_interval_s": 0.2,
    "poll_interval_s": 0.5,
}


POLL_S = 0.02  # how often wait_for_sync looks again; it gives up at its deadline
ROOT = Path(__file__).resolve().parents[1]


def _port_slice() -> range:
    """The ports this test process picks from: below the kernel's ephemeral range, which
    outgoing connections (to PostgreSQL, to servers) take their own ports from, so a
    port found free is not an outgoing connection's by the time a server binds it (CI
    once failed on "address already in use" that way); a slice of its own for each xdist
    worker, so two never pick alike."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    low, high = 10_000, min(first, 32_768)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    span = (high - low) // workers
    start = low + (int(worker) if worker.isdigit() else 0) % workers * span
    return range(start, start + span)


_PORTS = _port_slice()
_next_port = itertools.count(random.randrange(len(_PORTS)))


def free_port() -> int:
    """A loopback port nothing listens on (see _port_slice)."""
    for _ in range(len(_PORTS)):
        port = _PORTS[next(_next_port) % len(_PORTS)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # in use, or its last connections are still closing
                continue
            return port
    raise RuntimeError(f"no free port in {_PORTS}")


async def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01
) -> Any:
    """Poll `condition` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def wait_for_sync(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(POLL_S)


@dataclass
class Running:
    node: Node
    url: str
    api_key: str
    tenant_id: str
    database: str
    limits: Limits | None = None  # the API's abuse limits (api/limits.py)
    asgi: FrontDoor | None = None  # the application (the framework's is `asgi.app`)

    def count(self, where: str = "1=1") -> int:
        """Read the database directly, as an auditor would."""
        query = f"SELECT count(*) FROM tasks WHERE {where}"
        if self.database.startswith("postgresql://"):
            with psycopg.connect(self.database) as pg_conn:
                row = pg_conn.execute(query.encode()).fetchone()
                assert row is not None
                return int(row[0])
        path = self.database.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return int(conn.execute(query).fetchone()[0])


@contextlib.asynccontextmanager
async def database_for(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL database of its own."""
    if backend == "postgres":
        await pg.require_postgres()
        async with pg.fresh_database() as dsn:
            yield dsn
    else:
        yield f"sqlite:///{tmp_path / 'sluice.db'}"


@contextlib.asynccontextmanager
async def running_server(
    tmp_path: Path, app: App, backend: str = "sqlite", **overrides: Any
) -> AsyncIterator[Running]:
    async with (
        database_for(backend, tmp_path) as database,
        _running_server(database, app, **overrides) as running,
    ):
        yield running


@contextlib.asynccontextmanager
async def _running_server(database: str, app: App, **overrides: Any) -> AsyncIterator[Running]:
    settings = Settings.from_env({}, database=database, **{**FAST, **overrides})
    node = Node(settings)
    await node.start()
    try:
        async with _serving(node, settings, app) as running:
            yield running
    finally:  # whatever failed on the way up: a started node always stops
        await node.stop()


@contextlib.asynccontextmanager
async def _serving(node: Node, settings: Settings, app: App) -> AsyncIterator[Running]:
    tenant = await node.tenants.ensure(app.name)
    key = await node.tenants.create_key(tenant.id)
    await node.functions.register(tenant.id, [t.config for t in app.tasks.values()])
    # Bound here and handed over, never closed in between: no other socket can take it.
    # Made as the event loop makes a server's own (protocol TCP, not 0): asyncio sets
    # TCP_NODELAY only on connections of such sockets, as `sluice server` has it.
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", 0))
    port = int(listening.getsockname()[1])
    # The same uvicorn settings and connection guard as `sluice server`.
    asgi = create_app(node, manage_node=False)
    config = server_config(asgi, settings, host="127.0.0.1", port=port, lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    await wait_for(lambda: server.started or serving.done())
    try:
        url = f"http://127.0.0.1:{port}"
        yield Running(node, url, key, tenant.id, settings.database, asgi.limits, asgi)
    finally:
        server.should_exit = True
        try:
            await serving
        finally:
            listening.close()


@contextlib.asynccontextmanager
async def running_worker(
    running: Running, app: App, concurrency: int = 4, **options: Any
) -> AsyncIterator[Worker]:
    options.setdefault("api_key", running.api_key)  # a shared pool's worker gives its own
    # In-process workers run in-thread even for a shared pool (whose default is a child
    # process per attempt): their handlers share memory with the test that reads it.
    options.setdefault("isolation", "thread")
    worker = Worker(app, url=running.url, concurrency=concurrency, **options)
    task = asyncio.create_task(worker.run())
    await wait_for(lambda: worker.connected.is_set() or task.done())
    if task.done():
        task.result()
    try:
        yield worker
    finally:
        worker.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real process (a `sluice worker`, a flood script) from the repository's root, its
    output in `log`; stopped with SIGTERM on the way out, killed if it does not stop."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
