"""`make bench`: Sluice's hot path measured end to end, on this machine, alone.

Starts a real `sluice server` and real `sluice worker` processes on a throwaway
database, then measures:

- submit rate through the SDK: batches of 1,000, and single submits from 32 concurrent
  clients;
- drain rate: 20,000 no-op tasks already queued, 2 worker processes with the default
  slots, on plain functions (what most users write) and on `async def` ones; then the
  same on 256 slots a process, which says so;
- submit -> start latency (p50/p95/p99): one task every 5 ms to idle workers;
- delayed-task lateness (p50/p99): 1,000 tasks due 2 s after submit;
- peak shaving: 200,000 tasks submitted at once to a function limited to 500/s
  (burst 50): the release rate and the busiest one-second window over the first 20 s;
- fairness: a shared worker pool; tenant B submits 100 tasks (one every 10 ms) alone,
  then again while tenant A has a 50,000-task backlog: B's submit→start p50/p99 in
  both cases (start-time fair queueing interleaves B with A's backlog at once).

With `--backend postgres` (`make bench BACKEND=postgres`) the same runs use a fresh
database on the machine's PostgreSQL (SLUICE_BENCH_PG, default
postgresql://postgres@127.0.0.1:5432), and one more figure is taken: the time of a
claim of 100 tasks before and after a million finished tasks pile up in the table.

Every scenario runs the defaults a user gets (issue 20 point 6) but for what it must
change to be the scenario (the noisy neighbour's 8 slots, shorter overload windows so it
takes seconds); each prints what it changed, and RESULTS.md records it.

Figures are printed and recorded in bench/RESULTS.md with the date, machine and command.
Timestamps of dispatch, start and finish come from the store's attempt rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

import sluice
from bench.apps import SHAVED_BURST, SHAVED_RATE, noop, noop_sync, shaved
from bench.flow import bench_aimd, bench_noisy

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
SLUICE = [sys.executable, "-m", "sluice"]
DEFAULT_SLOTS = 10  # `sluice worker --concurrency`
PG_SERVER = os.environ.get("SLUICE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
BARS = {
    "sqlite": {
        "drain_wide": ("drain, 2 x 256 slots (tasks/s)", 15_000, "≥"),
        "batch_submit": ("batch submit (tasks/s)", 50_000, "≥"),
        "single_submit": ("32 concurrent single submits (tasks/s)", 5_000, "≥"),
        "latency_p99": ("submit→start p99 (ms)", 3.0, "≤"),
        "delay_p99": ("delayed lateness p99 (ms)", 10.0, "≤"),
    },
    "postgres": {
        "drain_wide": ("drain, 2 x 256 slots, one server node (tasks/s)", 8_000, "≥"),
    },
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.02)


class Rig:
    """A server and its workers on a throwaway database."""

    def __init__(
        self, work: Path, port: int, database: str, env: dict[str, str] | None = None
    ) -> None:
        self.work = work
        self.database = database
        self.postgres = database.startswith("postgresql://")
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.pool_key = f"pool-{os.getpid()}-bench"  # shared worker pools' key
        self.env = {
            **os.environ,
            "SLUICE_DATABASE": database,
            "PYTHONPATH": str(ROOT),
            "SLUICE_URL": self.url,
            "SLUICE_POOL_KEY": self.pool_key,
            "SLUICE_TARGETS_ALLOW_LOOPBACK": "true",  # the AIMD scenario's downstream
            **(env or {}),
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        # The server's own departures from the defaults, then each scenario's workers'.
        self.changes = [f"{k}={v}" for k, v in (env or {}).items()]
        out = subprocess.run(
            [*SLUICE, "tenant", "create", "bench", "-o", "json"],
            env=self.offline_env,
            capture_output=True,
            check=True,
        )
        self.env["SLUICE_API_KEY"] = json.loads(out.stdout)["api_key"]
        self.api_key = self.env["SLUICE_API_KEY"]

    @property
    def offline_env(self) -> dict[str, str]:
        """For the CLI on the database itself: with an admin key it would go through HTTP."""
        return {k: v for k, v in self.env.items() if k != "SLUICE_ADMIN_KEY"}

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.work / f"proc-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [*SLUICE, *args], env={**self.env, **(env or {})}, stdout=log, stderr=log
        )
        self.procs.append(proc)
        return proc

    def health(self) -> dict[str, Any]:
        try:
            return dict(httpx.get(f"{self.url}/v1/health", timeout=2).json())
        except httpx.HTTPError:
            return {}

    def server(self) -> None:
        self.start("server", "--port", str(self.port))
        wait_until(lambda: self.health().get("status") == "ok", 30, "the server")

    def tenant(self, name: str) -> tuple[str, str]:
        """(id, API key) of a new tenant."""
        out = subprocess.run(
            [*SLUICE, "tenant", "create", name, "-o", "json"],
            env=self.offline_env,
            capture_output=True,
            check=True,
        )
        created = json.loads(out.stdout)
        return created["id"], created["api_key"]

    def workers(
        self,
        processes: int = 1,
        concurrency: int | None = None,
        *,
        api_key: str | None = None,
        isolation: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """A `sluice worker` of bench/apps.py with the defaults a user gets, but for what
        is passed; each setting passed is said (`changed`) and printed with the figure."""
        argv = ["worker", "bench.apps:app"]
        if processes != 1:
            argv += ["--processes", str(processes)]
            self.changed(f"{processes} worker processes")
        if concurrency is not None:
            argv += ["--concurrency", str(concurrency)]
            self.changed(f"{concurrency} slots per process (default {DEFAULT_SLOTS})")
        if isolation is not None:
            argv += ["--isolation", isolation]
            self.changed(f"isolation {isolation}")
        proc = self.start(*argv, env={"SLUICE_API_KEY": api_key} if api_key else None)
        wait_until(lambda: self.health().get("workers", 0) >= processes, 30, "the workers")
        return proc

    def changed(self, what: str) -> None:
        """A scenario's departure from the defaults (issue 20 point 6)."""
        if what not in self.changes:
            self.changes.append(what)

    def said(self) -> str:
        """What the scenarios on this rig changed from the defaults since the last call."""
        text = "; ".join(self.changes) if self.changes else "none"
        self.changes = [c for c in self.changes if c.startswith("SLUICE_")]  # the server's stay
        return f"changed from the defaults: {text}"

    def stop_workers(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
        wait_until(lambda: self.health().get("workers", 1) == 0, 30, "workers to leave")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the store directly. `sql` is written for SQLite; for PostgreSQL, `?`
        becomes a placeholder and an id list (`IN ids(?)`) becomes `= ANY(...)`."""
        if self.postgres:
            sql = sql.replace(" IN ids(?)", " = ANY(%s)").replace("?", "%s")
            with psycopg.connect(self.database) as pg:
                return list(pg.execute(sql.encode(), params).fetchall())
        sql = sql.replace(" IN ids(?)", " IN (SELECT value FROM json_each(?))")
        lite = [json.dumps(p) if isinstance(p, list) else p for p in params]
        path = self.database.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            return conn.execute(sql, lite).fetchall()

    def count(self, state: str) -> int:
        return int(self.query("SELECT count(*) FROM tasks WHERE state = ?", state)[0][0])

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def database(backend: str, work: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{work / 'bench.db'}"
        return
    name = f"sluice_bench_{os.getpid()}"
    admin = f"{PG_SERVER}/postgres"
    with psycopg.connect(admin, autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        pg.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as pg:
            pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@contextlib.contextmanager
def rig(port: int, backend: str, env: dict[str, str] | None = None) -> Iterator[Rig]:
    with (
        tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp,
        database(backend, Path(tmp)) as url,
    ):
        r = Rig(Path(tmp), port, url, env)
        try:
            r.server()
            yield r
        finally:
            r.close()


def bench_batch_submit(r: Rig, total: int) -> tuple[float, float]:
    """(async SDK, sync SDK) tasks/s submitting `total` tasks in batches of 1,000."""
    noop.app.configure(url=r.url, api_key=r.api_key)
    noop.app.register()
    noop.submit_many([(i,) for i in range(1000)])  # warm up the connection and caches
    start = time.perf_counter()
    noop.submit_many([(i,) for i in range(total)])
    sync_rate = total / (time.perf_counter() - start)

    async def submit_async() -> float:
        await noop.asubmit_many([(i,) for i in range(1000)])
        start = time.perf_counter()
        await noop.asubmit_many([(i,) for i in range(total)])
        rate = total / (time.perf_counter() - start)
        await noop.app.aclient.aclose()
        return rate

    noop.app.configure(url=r.url, api_key=r.api_key)
    return asyncio.run(submit_async()), sync_rate


async def _single_submits(r: Rig, total: int, clients: int) -> float:
    per_client = total // clients

    async def client_loop() -> None:
        async with sluice.AsyncClient(r.url, r.api_key) as client:
            spec = {"function": "noop", "args": [1]}
            for _ in range(per_client):
                await client.submit(spec)

    async with sluice.AsyncClient(r.url, r.api_key) as warm:
        await warm.submit({"function": "noop"})
    start = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return per_client * clients / (time.perf_counter() - start)


def bench_drain(
    r: Rig, total: int, handler: Any = noop_sync, concurrency: int | None = None
) -> tuple[float, float]:
    """(tasks/s, seconds) of `total` queued no-ops drained by 2 worker processes."""
    handler.app.configure(url=r.url, api_key=r.api_key)
    handler.app.register()
    first = r.query("SELECT count(*) FROM tasks")[0][0]
    since = time.time()
    for i in range(0, total, 1000):
        handler.submit_many([(j,) for j in range(i, min(total, i + 1000))])
    queued = r.count("ready")
    workers = r.workers(2, concurrency)  # 2 processes: as bench/PEERS.md runs every system
    wait_until(lambda: r.count("succeeded") >= first + total, 300, "the drain")
    r.stop_workers(workers)
    (span,) = r.query(
        "SELECT max(a.finished_at) - min(a.dispatched_at) FROM attempts a "
        "JOIN tasks t ON t.id = a.task_id WHERE t.created_at >= ?", since
    )  # fmt: skip
    assert queued >= total
    return total / span[0], span[0]


def bench_peak_shaving(r: Rig, total: int, window_s: float) -> tuple[float, int]:
    """(release rate, busiest one-second window) of `total` tasks submitted at once to a
    function limited to SHAVED_RATE a second after a burst of SHAVED_BURST, over the
    first `window_s` seconds of the release (the rest would take total / rate)."""
    noop.app.configure(url=r.url, api_key=r.api_key)
    noop.app.register()
    since = time.time()
    for i in range(0, total, 1000):
        shaved.submit_many([(j,) for j in range(i, min(total, i + 1000))])
    workers = r.workers(2)
    began = time.monotonic()
    wait_until(lambda: time.monotonic() - began >= window_s, window_s + 5, "the window")
    r.stop_workers(workers)
    starts = sorted(
        row[0]
        for row in r.query(
            "SELECT a.dispatched_at FROM attempts a JOIN tasks t ON t.id = a.task_id "
            "WHERE t.function = 'shaved' AND t.created_at >= ?", since
        )
    )  # fmt: skip
    busiest, j = 0, 0
    for i, begin in enumerate(starts):
        while j < len(starts) and starts[j] < begin + 1.0:
            j += 1
        busiest = max(busiest, j - i)
    return (len(starts) - SHAVED_BURST) / (starts[-1] - starts[0]), busiest


def bench_fairness(r: Rig, flood: int, count: int) -> dict[str, float]:
    """Tenant B's submit→start latency (ms) alone and beside tenant A's backlog of
    `flood` tasks, on one shared worker pool (2 processes)."""
    _a, a_key = r.tenant("flooder")
    b_id, b_key = r.tenant("quiet")
    # In-thread: a shared pool's default runs each attempt in a child process, which
    # would measure process start-up, not fair queueing (`make bench-isolation` does).
    workers = r.workers(2, api_key=r.pool_key, isolation="thread")

    def b_latency() -> list[float]:
        client = sluice.Client(r.url, b_key)
        ids = []
        next_at = time.perf_counter()
        for i in range(count):  # a normal tenant: one task every 10 ms
            next_at += 0.010
            ids.append(client.submit({"function": "noop", "args": [i]}).id)
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        client.close()
        wait_until(
            lambda: r.query("SELECT count(*) FROM attempts WHERE task_id IN ids(?)", ids)[0][0]
            == count, 120, "B's tasks",
        )  # fmt: skip
        rows = r.query(
            "SELECT a.started_at - t.created_at FROM attempts a JOIN tasks t "
            "ON t.id = a.task_id WHERE a.task_id IN ids(?)", ids
        )  # fmt: skip
        return [late * 1000 for (late,) in rows]

    alone = b_latency()
    flooder = sluice.Client(r.url, a_key)
    for i in range(0, flood, 1000):
        flooder.submit_many([{"function": "noop", "args": [j]} for j in range(i, i + 1000)])
    flooder.close()
    backlog = r.count("ready")
    beside = b_latency()
    left = r.count("ready")
    r.stop_workers(workers)
    assert b_id
    return {
        "fair_b_alone_p50": pct(alone, 50), "fair_b_alone_p99": pct(alone, 99),
        "fair_b_flood_p50": pct(beside, 50), "fair_b_flood_p99": pct(beside, 99),
        "fair_a_backlog_at_b": backlog, "fair_a_backlog_after_b": left,
    }  # fmt: skip


def bench_latency(r: Rig, count: int, interval_s: float) -> list[float]:
    workers = r.workers()
    client = sluice.Client(r.url, r.api_key)
    sent: dict[str, float] = {}
    next_at = time.perf_counter()
    for i in range(count):
        next_at += interval_s
        t0 = time.time()
        sent[client.submit({"function": "noop", "args": [i]}).id] = t0
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    client.close()
    wait_until(
        lambda: r.query(
            "SELECT count(*) FROM attempts WHERE task_id IN ids(?)", list(sent)
        )[0][0] == count, 60, "latency tasks",
    )  # fmt: skip
    rows = r.query("SELECT task_id, started_at FROM attempts WHERE task_id IN ids(?)", list(sent))
    r.stop_workers(workers)
    return [(started - sent[task_id]) * 1000 for task_id, started in rows]


def bench_delays(r: Rig, count: int, delay_s: float) -> list[float]:
    workers = r.workers()
    client = sluice.Client(r.url, r.api_key)
    ids_list = []
    next_at = time.perf_counter()
    for i in range(count):  # one every 2 ms, each due delay_s after its own submit
        next_at += 0.002
        ids_list.append(client.submit({"function": "noop", "args": [i], "delay": delay_s}).id)
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    client.close()
    ids = ids_list
    wait_until(
        lambda: r.query(
            "SELECT count(*) FROM attempts WHERE task_id IN ids(?)", ids
        )[0][0] == count, 60, "delayed tasks",
    )  # fmt: skip
    rows = r.query(
        "SELECT a.started_at - t.run_at FROM attempts a JOIN tasks t ON t.id = a.task_id "
        "WHERE a.task_id IN ids(?)", ids
    )  # fmt: skip
    r.stop_workers(workers)
    return [late * 1000 for (late,) in rows]


def bench_claim_growth(database_url: str) -> tuple[float, float]:
    """Median ms of a claim of 100 tasks (1,000 ready) on an empty table, then with a
    million finished tasks beside them: the partial ready index keeps the two equal."""
    from sluice.model import NewTask, new_task_ids
    from sluice.store import ClaimRequest
    from sluice.store.postgres import PostgresStore

    async def claims(store: PostgresStore, tenant: str) -> float:
        times = []
        for _ in range(20):
            now = time.time()
            ids = new_task_ids(1000)
            tasks = [
                NewTask(id=i, function="f", payload=b"{}", state="ready", priority=5,
                        stag=now, run_at=now, max_attempts=3)
                for i in ids
            ]  # fmt: skip
            await store.submit_tasks(tenant, tasks, now)
            request = ClaimRequest(tenant_id=tenant, worker="w", functions=("f",), limit=100)
            start = time.perf_counter()
            await store.claim_tasks([request], now, 30.0)
            times.append((time.perf_counter() - start) * 1000)
            await store.cancel_tasks(tenant, ids, now)  # the next round starts from 1,000
        return statistics.median(times)

    async def run() -> tuple[float, float]:
        store = PostgresStore(database_url)
        await store.open()
        try:
            tenant = (await store.create_tenant("growth", time.time())).id
            before = await claims(store, tenant)
            async with store.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, "
                    "max_attempts, run_at, created_at, finished_at) "
                    "SELECT 'done-' || lpad(g::text, 8, '0'), $1, 'f', '\\x7b7d', 'succeeded', "
                    "5, g, 3, g, g, g FROM generate_series(1, 1000000) AS g",
                    tenant,
                )
                await conn.execute("VACUUM ANALYZE tasks")
            after = await claims(store, tenant)
            return before, after
        finally:
            await store.close()

    return asyncio.run(run())


def say(r: Rig, scenario: str) -> None:
    """Print, and note for RESULTS.md, what a scenario changed from the defaults."""
    line = f"{scenario}: {r.said()}"
    print(f"  {line}", flush=True)
    NOTES.append(line)


NOTES: list[str] = []  # what each scenario changed, for the record


def calibrate() -> dict[str, float]:
    """How fast and how quiet this machine is right now, so runs can be compared:
    a pure-Python loop, and the wake-up latency of a ping-pong between two idle processes
    (the floor under every cross-process hop of a task)."""
    start = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    loop_s = time.perf_counter() - start
    here, there = socket.socketpair()
    child = os.fork()
    if child == 0:
        here.close()
        while data := there.recv(16):
            there.send(data)
        os._exit(0)
    there.close()
    rtt = []
    for _ in range(400):
        t = time.perf_counter()
        here.send(b"x")
        here.recv(16)
        rtt.append((time.perf_counter() - t) * 1000)
        time.sleep(0.005)
    here.close()
    os.waitpid(child, 0)
    return {
        "cpu_loop_5M_s": loop_s,
        "pingpong_p50_ms": pct(rtt, 50),
        "pingpong_p99_ms": pct(rtt, 99),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def record(backend: str, figures: dict[str, float], notes: list[str], command: str) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {backend} — {now}",
        "",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        "",
        "| figure | measured | bar | met |",
        "| --- | ---: | ---: | :---: |",
    ]
    bars = BARS[backend]
    for key, (label, bar, op) in bars.items():
        value = figures[key]
        met = value >= bar if op == "≥" else value <= bar
        lines.append(f"| {label} | {value:,.1f} | {op} {bar:,} | {'yes' if met else 'no'} |")
    extra = [k for k in figures if k not in bars]
    for key in extra:
        lines.append(f"| {key} | {figures[key]:,.2f} | | |")
    lines += ["", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def write_results(section: str) -> None:
    header = (
        "# Benchmark results\n\n"
        "Written by `make bench` (bench/run.py); newest run first. Each run uses a fresh\n"
        "database and real server and worker processes on this machine, nothing else running.\n\n"
    )
    old = RESULTS.read_text() if RESULTS.exists() else header
    body = old[len(header) :] if old.startswith(header) else old
    RESULTS.write_text(header + section + "\n" + body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="sqlite", choices=sorted(BARS))
    parser.add_argument("--port", type=int, default=8431)
    parser.add_argument("--quick", action="store_true", help="smaller runs, nothing recorded")
    options = parser.parse_args()
    scale = 0.2 if options.quick else 1.0
    figures: dict[str, float] = calibrate()
    print(
        f"machine: 5M-step Python loop {figures['cpu_loop_5M_s']:.2f} s, process ping-pong "
        f"p50 {figures['pingpong_p50_ms']:.3f} ms p99 {figures['pingpong_p99_ms']:.3f} ms",
        flush=True,
    )
    notes = [
        "cpu_loop_5M_s and pingpong_* calibrate the machine at the time of the run: this "
        "is a shared 2-vCPU VM whose speed and wake-up latency vary from hour to hour"
    ]
    with rig(options.port, options.backend) as r:
        figures["batch_submit"], figures["batch_submit_sync"] = bench_batch_submit(
            r, int(50_000 * scale)
        )
        print(
            f"batch submit: {figures['batch_submit']:,.0f} tasks/s async SDK, "
            f"{figures['batch_submit_sync']:,.0f} tasks/s sync SDK",
            flush=True,
        )
        notes.append(
            "batch submit: 50,000 tasks in batches of 1,000; the async SDK keeps 2 requests "
            "in flight, the sync SDK (batch_submit_sync) sends one at a time"
        )
        figures["single_submit"] = asyncio.run(_single_submits(r, int(10_240 * scale), 32))
        print(f"32 concurrent single submits: {figures['single_submit']:,.0f} tasks/s", flush=True)
        say(r, "submits")
    with rig(options.port, options.backend) as r:
        drain, span = bench_drain(r, int(20_000 * scale))
        figures["drain"] = drain
        notes.append(
            f"drain: {int(20_000 * scale):,} no-op plain (sync) functions, 2 worker processes "
            f"with the default slots, first dispatch → last finish {span:.2f} s (attempt rows)"
        )
        print(f"drain: {drain:,.0f} tasks/s (plain functions)", flush=True)
        drain, span = bench_drain(r, int(20_000 * scale), noop)
        figures["drain_async"] = drain
        notes.append(f"drain_async: the same with `async def` no-ops, {span:.2f} s")
        print(f"drain: {drain:,.0f} tasks/s (async functions)", flush=True)
        say(r, "drain")
        drain, span = bench_drain(r, int(20_000 * scale), noop, concurrency=256)
        figures["drain_wide"] = drain
        notes.append(f"drain_wide: async no-ops on 2 x 256 slots, {span:.2f} s")
        print(f"drain: {drain:,.0f} tasks/s (async functions, 256 slots a process)", flush=True)
        say(r, "wide drain")
    with rig(options.port, options.backend) as r:
        shaved_total, window = int(200_000 * scale), 20.0 * scale
        rate, busiest = bench_peak_shaving(r, shaved_total, window)
        figures["peak_shaving_rate"], figures["peak_shaving_busiest_1s"] = rate, busiest
        print(
            f"peak shaving: {shaved_total:,} tasks at once, limit {SHAVED_RATE:,.0f}/s burst "
            f"{SHAVED_BURST}: released at {rate:,.0f}/s, busiest second {busiest:,}",
            flush=True,
        )
        say(r, "peak shaving")
        notes.append(
            f"peak shaving: {shaved_total:,} tasks submitted at once to a function with "
            f"rate={SHAVED_RATE:,.0f}/s, burst={SHAVED_BURST}, measured over the first "
            f"{window:.0f} s of the release; release rate = (n - burst) / (last dispatch - "
            "first), busiest second from the attempt rows "
            f"(bound: {SHAVED_RATE + SHAVED_BURST:,.0f})"
        )
    with rig(options.port, options.backend) as r:
        flood = int(50_000 * scale)
        fair = bench_fairness(r, flood, 100)
        figures.update(fair)
        print(
            f"fairness: B alone p50 {fair['fair_b_alone_p50']:.1f} ms p99 "
            f"{fair['fair_b_alone_p99']:.1f} ms; beside A's backlog of "
            f"{fair['fair_a_backlog_at_b']:,.0f} p50 {fair['fair_b_flood_p50']:.1f} ms p99 "
            f"{fair['fair_b_flood_p99']:.1f} ms ({fair['fair_a_backlog_after_b']:,.0f} of A's "
            "still waiting when B's last task started)",
            flush=True,
        )
        say(r, "fairness")
        notes.append(
            f"fairness: one shared pool (2 processes, the pool key, in-thread); tenant B "
            f"submits 100 tasks one every 10 ms, alone, then after tenant A queued {flood:,} "
            "at once; latency = worker start - created_at (store clock), from attempt rows"
        )
    with rig(options.port, options.backend) as r:
        aimd = bench_aimd(r, int(20_000 * scale))
        figures.update(aimd)
        print(
            f"AIMD: L reached 80 % of the capacity (20) in {aimd['aimd_converge_s']:.1f} s, "
            f"then averaged {aimd['aimd_mean_limit']:.1f} with "
            f"{aimd['aimd_429_share'] * 100:.1f} % 429s, serving {aimd['aimd_rate_before']:.0f}/s;"
            f" capacity halved to 10: L averaged {aimd['aimd_mean_limit_halved']:.1f}; "
            f"plot in bench/aimd.svg",
            flush=True,
        )
        say(r, "AIMD")
        notes.append(
            "aimd: an HTTP target (bench/downstream.py) serving 20 requests at once, 20 ms "
            f"each, 429 above; {int(20_000 * scale):,} tasks; capacity halved to 10 at 20 s; "
            "L and the served rate sampled every 0.2 s (bench/aimd.svg)"
        )
    noisy_env = {"SLUICE_OVERLOAD_S": "2", "SLUICE_BACKPRESSURE_INTERVAL_S": "1",
                 "SLUICE_OVERLOAD_MIN_BACKLOG": "200"}  # fmt: skip
    with rig(options.port, options.backend, noisy_env) as r:
        noisy = bench_noisy(r, 12.0 * max(scale, 0.5))
        figures.update(noisy)
        print(
            f"noisy neighbour: B and C p99 {noisy['noisy_bc_p99_alone']:.1f} ms alone, "
            f"{noisy['noisy_bc_p99_beside']:.1f} ms beside A's flood; "
            f"{noisy['noisy_a_refused_share'] * 100:.0f} % of A's batches refused, "
            f"{noisy['noisy_bc_refused']:.0f} of B's and C's",
            flush=True,
        )
        say(r, "noisy neighbour")
        notes.append(
            "noisy: shared pool of 8 slots x 10 ms tasks (800/s at most); A floods batches "
            "of 80 every 10 ms from its own process (about 10x the drain); B and C one task "
            "every 20 ms each; overload_s=2 and 1 s intervals (defaults 30 s and 10 s)"
        )
    with rig(options.port, options.backend) as r:
        latency = bench_latency(r, int(2000 * scale), 0.005)
        figures["latency_p50"] = pct(latency, 50)
        figures["latency_p95"] = pct(latency, 95)
        figures["latency_p99"] = pct(latency, 99)
        print(
            f"submit→start: p50 {figures['latency_p50']:.2f} ms, p95 "
            f"{figures['latency_p95']:.2f} ms, p99 {figures['latency_p99']:.2f} ms",
            flush=True,
        )
        notes.append(
            f"latency: {len(latency)} single submits every 5 ms (sync SDK), 1 idle worker "
            "(the default 10 slots); "
            "client clock before the request → worker clock at handler start"
        )
        lateness = bench_delays(r, int(1000 * scale), 2.0)
        figures["delay_p50"] = pct(lateness, 50)
        figures["delay_p99"] = pct(lateness, 99)
        print(
            f"delayed lateness: p50 {figures['delay_p50']:.2f} ms, "
            f"p99 {figures['delay_p99']:.2f} ms",
            flush=True,
        )
        say(r, "latency and delays")
        notes.append(
            f"delays: {len(lateness)} tasks submitted one every 2 ms, each due 2 s later; "
            "lateness = worker start - run_at"
        )
    if options.backend == "postgres":
        with (
            tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp,
            database("postgres", Path(tmp)) as url,
        ):
            before, after = bench_claim_growth(url)
        figures["claim_ms_empty"], figures["claim_ms_1M_finished"] = before, after
        print(f"claim of 100: {before:.2f} ms, with 1M finished tasks {after:.2f} ms", flush=True)
        notes.append(
            "claim_ms_*: median of 20 claims of 100 tasks (1,000 ready) through the store, "
            "before and after 1,000,000 finished tasks are added to the table"
        )
    print(f"median latency {statistics.median(latency):.2f} ms")
    if not options.quick:
        write_results(record(options.backend, figures, notes + NOTES, "make bench"))
        print(f"recorded in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
