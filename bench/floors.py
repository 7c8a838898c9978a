"""The physical floors under Sluice's figures on this machine (issue 20 point 9).

    python -m bench.floors [--backend sqlite|postgres|both] [-n 3000]

Each floor is the least the figure's path could cost here, measured without Sluice's
Python in the way, next to Sluice's own step where it has one:

- **commit, one row**: `BEGIN; INSERT` one real task row (a Sluice submit's columns, copied, so
  the table, its indexes and the row's size are Sluice's) `; COMMIT`, with Sluice's
  pragmas (SQLite: WAL, synchronous=NORMAL) or on Sluice's schema (PostgreSQL, asyncpg).
  What a durable single submit cannot go below.
- **commit, 1,000 rows**: the same as one `executemany` per commit (PostgreSQL: `COPY`):
  the batch-submit floor; on SQLite also into a table with the same columns and only a
  primary key (what the task table's other indexes cost).
- **HTTP round trip**: Sluice's sync client (`sluice/client/wire.py`) to uvicorn with the
  node's own protocol and settings (`api/serving.py`) and uvloop, answering a trivial
  ASGI app: what HTTP costs a single submit before any work.
- **framed round trip**: a 4-byte length and a JSON body each way over a kept-open
  socket to an asyncio protocol (uvloop): what a persistent producer connection would
  cost instead of HTTP.
- **intake, in process**: `Node.intake.submit` of one task, called in a loop on the
  node's own event loop (uvloop): Sluice's server work for a single submit with no HTTP.
- **process ping-pong**: the wake-up of an idle process, both ways (bench.run.calibrate):
  a submit→start crosses two processes (producer → server → worker).

Prints medians of 3 repetitions of `-n` operations each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import uvicorn
import uvloop

from bench.run import calibrate, database
from sluice.api import submit as submit_api
from sluice.api.serving import server_config
from sluice.config import Settings
from sluice.contract import FunctionConfig, TaskSpec
from sluice.engine.node import Node
from sluice.store.sqlite.queries import Q

# The columns a submit writes (the rest take their defaults), as the store's insert names them.
INSERTED = [c.strip() for c in Q["insert_task"].split("(", 1)[1].split(")", 1)[0].split(",")]

REPS = 3
BATCH = 1000
SPEC = b'{"function":"noop","args":[%d]}'

HTTP_CLIENT = """
import socket, struct, sys, time
from sluice.client.wire import Wire
port, raw_port, n, reps = (int(a) for a in sys.argv[1:5])
wire = Wire(f"http://127.0.0.1:{port}", {"content-type": "application/json"}, 10, None)
body = b'{"function":"noop","args":[1]}'
wire.request("POST", "/v1/tasks", body, None)
http = []
for _ in range(reps):
    t = time.perf_counter()
    for _ in range(n):
        wire.request("POST", "/v1/tasks", body, None)
    http.append((time.perf_counter() - t) / n)
s = socket.create_connection(("127.0.0.1", raw_port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
frame = struct.pack(">I", len(body)) + body
framed = []
for _ in range(reps):
    t = time.perf_counter()
    for _ in range(n):
        s.sendall(frame)
        s.recv(65536)
    framed.append((time.perf_counter() - t) / n)
print(sorted(http)[reps // 2], sorted(framed)[reps // 2])
"""


def median(values: list[float]) -> float:
    return statistics.median(values)


async def _trivial(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    head = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 201, "headers": head})
    await send({"type": "http.response.body", "body": b"{}"})


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"\x00\x00\x00\x02{}")  # type: ignore[attr-defined]


async def round_trips(n: int) -> tuple[float, float]:
    """(HTTP round trip, framed round trip), seconds, from a client process."""
    settings = Settings.from_env({})
    server = uvicorn.Server(
        server_config(_trivial, settings, host="127.0.0.1", port=0, lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    raw = await asyncio.get_running_loop().create_server(_Echo, "127.0.0.1", 0)
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        raw_port = raw.sockets[0].getsockname()[1]
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HTTP_CLIENT, str(port), str(raw_port), str(n), str(REPS),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        out, _ = await client.communicate()
        http, framed = (float(x) for x in out.split())
        return http, framed
    finally:
        raw.close()
        server.should_exit = True
        await serving


async def node_with_a_task(url: str) -> tuple[Node, str]:
    node = Node(Settings.from_env({}, database=url))
    await node.start()
    tenant = await node.tenants.ensure("floors")
    await node.functions.register(tenant.id, [FunctionConfig(name="noop")])
    return node, tenant.id


async def intake(node: Node, tenant_id: str, n: int) -> float:
    """Seconds per `Node.intake.submit` of one task (the API's own decode included)."""
    times = []
    for _ in range(REPS):
        began = time.perf_counter()
        for i in range(n):
            spec = msgspec.json.decode(SPEC % i, type=TaskSpec)
            await submit_api.submit_one(node, tenant_id, spec)
        times.append((time.perf_counter() - began) / n)
    return median(times)


def sqlite_commits(path: str, n: int) -> tuple[float, float, float]:
    """(seconds per one-row commit, rows/s in 1,000-row commits, the same into a table with
    only a primary key) on copies of a real row."""
    conn = sqlite3.connect(path, isolation_level=None)
    # Sluice's pragmas: the node checkpoints on a thread of its own, off the commit path.
    pragmas = ("busy_timeout = 5000", "synchronous = NORMAL", "journal_mode = WAL",
               "wal_autocheckpoint = 0")  # fmt: skip
    for pragma in pragmas:
        conn.execute("PRAGMA " + pragma)
    cols = INSERTED
    row = list(conn.execute(f"SELECT {','.join(cols)} FROM tasks LIMIT 1").fetchone())
    at = cols.index("id")
    insert = f"INSERT INTO tasks ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})"
    one, many = [], []
    for rep in range(REPS):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        began = time.perf_counter()
        for i in range(n):
            row[at] = f"floor-{rep}-{i:09d}"
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(insert, row)
            conn.execute("COMMIT")
        one.append((time.perf_counter() - began) / n)
        rows = [[*row[:at], f"floor-batch-{rep}-{i:09d}", *row[at + 1 :]] for i in range(n)]
        many.append(_batch_rate(conn, insert, rows))
    # The same rows into a table with the same columns and only a primary key: what
    # the batch floor would be without the task table's other indexes.
    conn.execute(f"CREATE TABLE floor_bare AS SELECT {','.join(cols)} FROM tasks WHERE 0")
    conn.execute("CREATE UNIQUE INDEX floor_bare_id ON floor_bare(id)")
    bare_insert = insert.replace("INSERT INTO tasks", "INSERT INTO floor_bare")
    bare = []
    for rep in range(REPS):
        rows = [[*row[:at], f"floor-bare-{rep}-{i:09d}", *row[at + 1 :]] for i in range(n)]
        bare.append(_batch_rate(conn, bare_insert, rows))
    conn.close()
    return median(one), median(many), median(bare)


def _batch_rate(conn: sqlite3.Connection, insert: str, rows: list[list[Any]]) -> float:
    """Rows/s inserting `rows` in commits of BATCH, from an empty WAL."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    began = time.perf_counter()
    for first in range(0, len(rows), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows[first : first + BATCH])
        conn.execute("COMMIT")
    return len(rows) / (time.perf_counter() - began)


async def postgres_commits(url: str, n: int) -> tuple[float, float, None]:
    conn = await asyncpg.connect(url)
    try:
        cols = INSERTED
        row = list((await conn.fetchrow(f"SELECT {','.join(cols)} FROM tasks LIMIT 1")).values())
        at = cols.index("id")
        marks = ",".join(f"${i + 1}" for i in range(len(cols)))
        insert = f"INSERT INTO tasks ({','.join(cols)}) VALUES ({marks})"
        one, many = [], []
        for rep in range(REPS):
            began = time.perf_counter()
            for i in range(n):
                row[at] = f"floor-{rep}-{i:09d}"
                async with conn.transaction():
                    await conn.execute(insert, *row)
            one.append((time.perf_counter() - began) / n)
            rows = [(*row[:at], f"floor-batch-{rep}-{i:09d}", *row[at + 1 :]) for i in range(n)]
            began = time.perf_counter()
            for first in range(0, n, BATCH):  # COPY: the fastest way rows go in
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "tasks", records=rows[first : first + BATCH], columns=cols
                    )
            many.append(n / (time.perf_counter() - began))
        return median(one), median(many), None
    finally:
        await conn.close()


async def backend_floors(backend: str, n: int) -> dict[str, float | None]:
    with (
        tempfile.TemporaryDirectory(prefix="sluice-floors-") as tmp,
        database(backend, Path(tmp)) as url,
    ):
        node, tenant_id = await node_with_a_task(url)
        try:
            seconds = await intake(node, tenant_id, n)
        finally:
            await node.stop()
        bare: float | None
        if backend == "sqlite":
            one, many, bare = sqlite_commits(url.removeprefix("sqlite:///"), n)
        else:
            one, many, bare = await postgres_commits(url, n)
    return {
        "commit_one_us": one * 1e6, "commit_batch_rows_s": many, "bare_batch_rows_s": bare,
        "intake_us": seconds * 1e6,
    }  # fmt: skip


async def main(options: argparse.Namespace) -> dict[str, Any]:
    backends = ["sqlite", "postgres"] if options.backend == "both" else [options.backend]
    out: dict[str, Any] = {"machine": calibrate()}
    http, framed = await round_trips(options.n)
    out["http_rtt_us"], out["framed_rtt_us"] = http * 1e6, framed * 1e6
    for backend in backends:
        out[backend] = await backend_floors(backend, options.n)
    return out


def report(out: dict[str, Any]) -> str:
    m = out["machine"]
    rows = [
        ("HTTP round trip (sync client, node's uvicorn, trivial app)",
         f"{out['http_rtt_us']:.0f} µs"),
        ("framed round trip (kept-open socket, asyncio protocol)",
         f"{out['framed_rtt_us']:.0f} µs"),
    ]  # fmt: skip
    for backend in ("sqlite", "postgres"):
        if backend not in out:
            continue
        b = out[backend]
        rows += [
            (f"{backend}: commit of one task row", f"{b['commit_one_us']:.0f} µs"),
            (f"{backend}: commits of 1,000 task rows", f"{b['commit_batch_rows_s']:,.0f} rows/s"),
        ]
        if b["bare_batch_rows_s"]:
            rows.append((f"{backend}: the same, into a table with only a primary key",
                         f"{b['bare_batch_rows_s']:,.0f} rows/s"))  # fmt: skip
        rows.append((f"{backend}: `Node.intake.submit`, one task, in process",
                     f"{b['intake_us']:.0f} µs"))  # fmt: skip
    return "\n".join([
        f"machine: 5M-step Python loop {m['cpu_loop_5M_s']:.2f} s; process ping-pong p50 "
        f"{m['pingpong_p50_ms']:.3f} ms, p99 {m['pingpong_p99_ms']:.3f} ms",
        "",
        "| floor | value |",
        "| --- | ---: |",
        *(f"| {name} | {value} |" for name, value in rows),
    ])  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="both", choices=["sqlite", "postgres", "both"])
    parser.add_argument("-n", type=int, default=3000, help="operations per repetition")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    options = parser.parse_args()
    figures = uvloop.run(main(options))
    print(report(figures))
    if options.json:
        print(json.dumps(figures))
