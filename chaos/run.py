"""Crash-safety run: kills the server and workers with SIGKILL while they work, then audits.

    python -m chaos.run [--tasks 5000] [--server-kills 3] [--worker-kills 5] [--seed N]
                        [--backend sqlite|postgres]

One database (a SQLite file in a temporary directory, or with `--backend postgres` a
fresh database on SLUICE_CHAOS_PG, default postgresql://postgres@127.0.0.1:5432,
dropped afterwards), one `sluice server` and a few `sluice
worker chaos.workload:app` processes, all real subprocesses. A submitter sends a mix of
tasks (some keyed, some delayed, some failing once) in batches, retrying a batch until
it is acknowledged; two chaos threads with seeded random schedules kill the server (and
restart it on the same port and database) and kill workers (and start replacements).
Once every task has ended, the database (read directly, read-only) and the workers'
execution journals (chaos/workload.py) are checked against what was acknowledged.
Exit status 0 only when every check passes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import msgspec
import psycopg

import sluice
from sluice.errors import RemoteError

from .workload import RETRY

ROOT = Path(__file__).resolve().parents[1]
SLUICE = [sys.executable, "-m", "sluice"]
TERMINAL = ("succeeded", "dead", "cancelled", "expired")
FUNCTION = "work"
SERVER_ENV = {
    "SLUICE_LEASE_S": "3",
    "SLUICE_HEARTBEAT_S": "1",
    "SLUICE_REAP_INTERVAL_S": "0.5",
    "SLUICE_PROMOTE_INTERVAL_S": "0.2",
}
MIN_UPTIME_S = 1.0  # a restarted server lives at least this long before the next kill
EPSILON_S = 0.001  # float timestamps written by different processes


def log(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DeadlineExceeded(Exception):
    pass


# -- the processes ---------------------------------------------------------------------


class Cluster:
    """The server and worker processes of one run, on one database in `tmp`."""

    def __init__(self, tmp: Path, port: int, concurrency: int, database: str) -> None:
        self.tmp = tmp
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.db = database
        self.journal = tmp / "journal"
        self.journal.mkdir()
        self.concurrency = concurrency
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        pythonpath = [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
        self.env = {
            **env,
            **SERVER_ENV,
            "SLUICE_DATABASE": database,
            "SLUICE_URL": self.url,
            "SLUICE_CHAOS_JOURNAL": str(self.journal),
            "PYTHONPATH": os.pathsep.join(pythonpath),
        }
        self.api_key = ""
        self.server: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.killed: dict[int, float] = {}  # pid -> when it was sent SIGKILL (unix time)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._lock = threading.Lock()
        self._closed = False

    def create_tenant(self) -> None:
        created = subprocess.run(
            [*SLUICE, "tenant", "create", "chaos", "-o", "json"],
            env=self.env, cwd=self.tmp, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        self.api_key = json.loads(created.stdout)["api_key"]
        self.env["SLUICE_API_KEY"] = self.api_key

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the run is stopping; no new processes")
            out = open(self.tmp / f"{name}-{len(self._procs)}.log", "wb")  # noqa: SIM115
            proc = subprocess.Popen(
                [*SLUICE, *args], env=self.env, cwd=self.tmp, stdout=out, stderr=subprocess.STDOUT
            )
            self._logs.append(out)
            self._procs.append(proc)
        return proc

    def start_server(self, timeout: float) -> subprocess.Popen[bytes]:
        self.server = self._start("server", "server", "--port", str(self.port))
        self.wait_healthy(timeout)
        return self.server

    def kill_server(self) -> int:
        assert self.server is not None
        return self._kill(self.server)

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = self._start(
            "worker", "worker", "chaos.workload:app", "--concurrency", str(self.concurrency),
            "--grace", "10",
        )  # fmt: skip
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> int:
        self.workers.remove(proc)
        return self._kill(proc)

    def _kill(self, proc: subprocess.Popen[bytes]) -> int:
        proc.send_signal(signal.SIGKILL)
        self.killed[proc.pid] = time.time()
        proc.wait()
        return proc.pid

    def health(self) -> dict[str, Any] | None:
        try:
            answer = httpx.get(f"{self.url}/v1/health", timeout=2)
            return dict(answer.json()) if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def wait_healthy(self, timeout: float, workers: int | None = None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            health = self.health() or {}
            connected = int(health.get("workers", 0))
            if health.get("status") == "ok" and (workers is None or connected >= workers):
                return
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.server.returncode}")
            if time.monotonic() > deadline:
                raise DeadlineExceeded(f"the server was not ready within {timeout:g}s")
            time.sleep(0.05)

    def stop_gracefully(self, timeout: float) -> None:
        """SIGTERM the workers (they drain), then the server; SIGKILL what lingers."""
        for group in (list(self.workers), [self.server] if self.server else []):
            for proc in group:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log(f"  process {proc.pid} did not stop within {timeout:g}s; killing it")
                    proc.kill()
                    proc.wait()

    def stop(self) -> None:
        """Kill every process this run started (idempotent; used on every exit path)."""
        with self._lock:
            self._closed = True
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        for out in self._logs:
            out.close()

    def tail_logs(self, lines: int = 15) -> str:
        parts = []
        for path in sorted(self.tmp.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


# -- the load --------------------------------------------------------------------------


@dataclass
class Planned:
    n: int
    ms: int
    key: str | None = None
    delay: float | None = None
    fail_once: bool = False

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "function": FUNCTION,
            "kwargs": {"n": self.n, "ms": self.ms, "fail_once": self.fail_once},
        }
        if self.key is not None:
            spec["key"] = self.key
        if self.delay is not None:
            spec["delay"] = self.delay
        return spec


@dataclass
class Submitted:
    """What the submitter saw acknowledged."""

    ids: dict[int, str] = field(default_factory=dict)  # planned task -> acknowledged id
    created: dict[int, bool] = field(default_factory=dict)
    duplicates: list[tuple[int, str, bool]] = field(default_factory=list)  # n, id, created
    acknowledged: int = 0  # submits acknowledged, duplicates included
    batches: int = 0
    retried_batches: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    finished_at: float = 0.0


def plan_load(n: int, seed: int, keyed: float, delayed: float, failing: float) -> list[Planned]:
    rng = random.Random(f"plan-{seed}")
    tasks = []
    for i in range(n):
        task = Planned(i, rng.randint(5, 50))
        if rng.random() < keyed:
            task.key = f"chaos-{seed}-{i}"
        if rng.random() < delayed:
            task.delay = round(rng.uniform(0.5, 3.0), 3)
        task.fail_once = rng.random() < failing
        tasks.append(task)
    return tasks


def plan_batches(
    tasks: list[Planned], seed: int, duplicates: float
) -> list[list[tuple[Planned, bool]]]:
    """Batches of 20-200 submits; some keyed tasks are submitted again in a later batch
    (flagged True), which must return the task the first submit made."""
    rng = random.Random(f"batches-{seed}")
    batches: list[list[tuple[Planned, bool]]] = []
    i = 0
    while i < len(tasks):
        size = rng.randint(20, 200)
        batches.append([(t, False) for t in tasks[i : i + size]])
        i += size
    again: list[list[tuple[Planned, bool]]] = [[] for _ in range(len(batches) + 1)]
    for index, batch in enumerate(batches):
        for task, _ in batch:
            if task.key is not None and rng.random() < duplicates:
                again[rng.randint(index + 1, len(batches))].append((task, True))
    merged = [batch + extra for batch, extra in zip(batches, again, strict=False)]
    return merged + ([again[-1]] if again[-1] else [])


def submit_all(
    cluster: Cluster,
    batches: list[list[tuple[Planned, bool]]],
    window_s: float,
    deadline: float,
    out: Submitted,
    stop: threading.Event,
) -> None:
    """Submit batch after batch, paced over `window_s`; a batch that is not acknowledged
    (connection refused or cut, 5xx) is sent again until it is."""
    start = time.monotonic()
    pause = random.Random()  # only jitters the retry pauses; the load itself is seeded
    client = sluice.Client(cluster.url, cluster.api_key, timeout=5)
    try:
        for index, batch in enumerate(batches):
            due = start + window_s * index / max(1, len(batches))
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            specs = [task.spec() for task, _ in batch]
            tries = 0
            while True:
                if stop.is_set():
                    return
                try:
                    outcomes = client.submit_many(specs)
                    break
                except RemoteError as exc:
                    if exc.status < 500 and exc.status != 429:
                        raise
                    out.errors[f"HTTP {exc.status}"] += 1
                except httpx.HTTPError as exc:
                    out.errors[type(exc).__name__] += 1
                tries += 1
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(f"batch {index} was not acknowledged in time")
                if tries % 20 == 0:  # a fresh connection pool, in case the old one is stuck
                    client.close()
                    client = sluice.Client(cluster.url, cluster.api_key, timeout=5)
                time.sleep(pause.uniform(0.02, 0.1))
            out.batches += 1
            out.retried_batches += tries > 0
            if len(outcomes) != len(batch):
                raise AssertionError(f"batch {index}: {len(batch)} sent, {len(outcomes)} answers")
            for (task, again), outcome in zip(batch, outcomes, strict=True):
                out.acknowledged += 1
                if again:
                    out.duplicates.append((task.n, outcome.id, outcome.created))
                else:
                    out.ids[task.n] = outcome.id
                    out.created[task.n] = outcome.created
    finally:
        client.close()
        out.finished_at = time.monotonic()


# -- chaos -----------------------------------------------------------------------------


@dataclass
class ChaosLog:
    server_kills: int = 0
    worker_kills: int = 0
    events: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def chaos_threads(
    cluster: Cluster,
    seed: int,
    server_kills: int,
    worker_kills: int,
    window_s: float,
    max_down_s: float,
    elapsed: Callable[[], float],
    stop: threading.Event,
    record: ChaosLog,
) -> list[threading.Thread]:
    """Two independent seeded schedules within the window: server kills (each followed
    by a restart on the same port and database after a short pause) and worker kills
    (each followed by a replacement). A worker may well die while the server is down."""
    start = time.monotonic()

    def moments(rng: random.Random, n: int) -> list[float]:
        return sorted(rng.uniform(0.1, 0.9) * window_s for _ in range(n))

    def kill_servers() -> None:
        rng = random.Random(f"server-chaos-{seed}")
        up_since = start
        for at in moments(rng, server_kills):
            # A kill lands on a server that has been up a moment (workers reconnect), even
            # when the previous restart took longer than the gap in the schedule.
            due = max(start + at, up_since + MIN_UPTIME_S)
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            pid = cluster.kill_server()
            record.server_kills += 1
            down = rng.uniform(0.2, max_down_s)
            report(f"[{elapsed():6.2f}s] server {pid} killed; restarting in {down:.2f}s")
            if stop.wait(down):
                return
            began = time.monotonic()
            server = cluster.start_server(timeout=60)
            up_since = time.monotonic()
            report(
                f"[{elapsed():6.2f}s] server {server.pid} up on the same port and database "
                f"({time.monotonic() - began:.2f}s start-up)"
            )

    def kill_workers() -> None:
        rng = random.Random(f"worker-chaos-{seed}")
        for at in moments(rng, worker_kills):
            if stop.wait(max(0.0, start + at - time.monotonic())):
                return
            victim = rng.choice(cluster.workers)
            pid = cluster.kill_worker(victim)
            record.worker_kills += 1
            replacement = cluster.start_worker()
            report(f"[{elapsed():6.2f}s] worker {pid} killed; replaced by {replacement.pid}")

    def report(event: str) -> None:
        record.events.append(event)
        log(event)

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                record.errors.append(exc)
                log(f"[{elapsed():6.2f}s] chaos stopped: {exc!r}")

        return run

    return [
        threading.Thread(target=guarded(kill_servers), name="chaos-server", daemon=True),
        threading.Thread(target=guarded(kill_workers), name="chaos-workers", daemon=True),
    ]


# -- the audit -------------------------------------------------------------------------


@dataclass
class Run:
    """One execution of one attempt, from a worker's journal."""

    pid: int
    task_id: str
    attempt: int
    start: float
    end: float | None = None
    outcome: str | None = None


def read_journal(directory: Path) -> tuple[list[Run], int]:
    runs: dict[tuple[int, str, int], list[Run]] = defaultdict(list)
    malformed = 0
    for path in sorted(directory.glob("journal-*.log")):
        pid = int(path.stem.removeprefix("journal-"))
        for line in path.read_text().splitlines():
            parts = line.split()
            try:
                kind, task_id, attempt, at = parts[0], parts[1], int(parts[2]), float(parts[3])
            except (IndexError, ValueError):
                malformed += 1
                continue
            held = runs[(pid, task_id, attempt)]
            if kind == "start":
                held.append(Run(pid, task_id, attempt, at))
            elif kind == "end" and held and held[-1].end is None and len(parts) == 5:
                held[-1].end, held[-1].outcome = at, parts[4]
            else:
                malformed += 1
    return [run for held in runs.values() for run in held], malformed


@dataclass
class TaskRow:
    state: str
    key: str | None
    attempt: int
    created_at: float
    finished_at: float | None
    n: int  # the planned task, from the payload


@dataclass
class AttemptRow:
    outcome: str
    worker: str | None


@dataclass
class Db:
    tasks: dict[str, TaskRow]
    attempts: dict[tuple[str, int], AttemptRow]
    events: Counter[str]


def _rows(database: str, query: str) -> list[tuple[Any, ...]]:
    """Read the store directly and read-only, as an auditor would."""
    if database.startswith("postgresql://"):
        with psycopg.connect(database) as pg:
            pg.read_only = True
            return list(pg.execute(query.encode()).fetchall())
    path = database.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn.execute(query).fetchall()


PG_SERVER = os.environ.get("SLUICE_CHAOS_PG", "postgresql://postgres@127.0.0.1:5432")


def create_database(backend: str, tmp: Path) -> str:
    """A fresh database for the run: a SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'sluice.db'}"
    name = f"sluice_chaos_{os.getpid()}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        pg.execute(f'CREATE DATABASE "{name}"'.encode())
    return f"{PG_SERVER}/{name}"


def drop_database(database: str) -> None:
    if database.startswith("postgresql://"):
        name = database.rsplit("/", 1)[1]
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as pg:
            pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def read_db(database: str) -> Db:
    query = "SELECT id, state, key, attempt, created_at, finished_at, payload FROM tasks"
    tasks = {
        task_id: TaskRow(
            state,
            key,
            int(attempt),
            float(created),
            finished,
            json.loads(bytes(payload))["kwargs"]["n"],
        )
        for task_id, state, key, attempt, created, finished, payload in _rows(database, query)
    }
    query = "SELECT task_id, attempt, outcome, worker FROM attempts"
    attempts = {
        (task_id, int(attempt)): AttemptRow(outcome, worker)
        for task_id, attempt, outcome, worker in _rows(database, query)
    }
    query = "SELECT kind, count(*) FROM events GROUP BY kind"
    events = Counter({kind: int(n) for kind, n in _rows(database, query)})
    return Db(tasks, attempts, events)


def open_count(database: str, ids: list[str]) -> tuple[int, int, int]:
    """(tasks in the db, of them not yet terminal, acknowledged ids not in the db)."""
    states = dict(_rows(database, "SELECT id, state FROM tasks"))
    pending = sum(1 for s in states.values() if s not in TERMINAL)
    missing = sum(1 for i in ids if i not in states)
    return len(states), pending, missing


def pid_of(worker: str | None) -> int | None:
    """Worker ids are `host-pid-random`."""
    if not worker:
        return None
    try:
        return int(worker.rsplit("-", 2)[1])
    except (IndexError, ValueError):
        return None


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def audit(
    tasks: list[Planned],
    submitted: Submitted,
    db: Db,
    runs: list[Run],
    malformed: int,
    killed: dict[int, float],
) -> tuple[list[Check], list[tuple[str, object]]]:
    """The checks, and the counts for the summary. Tasks in the db that were never
    acknowledged (a batch committed just before a kill, then sent again) are held to
    the same rules as the others: they must end, and run like their planned task."""
    checks: list[Check] = []

    def check(name: str, passed: bool, detail: str) -> None:
        checks.append(Check(name, passed, detail))

    planned = {t.n: t for t in tasks}
    acked = submitted.ids
    acked_ids = set(acked.values())
    by_task: dict[str, list[Run]] = defaultdict(list)
    by_attempt: dict[tuple[str, int], list[Run]] = defaultdict(list)
    for run in runs:
        by_task[run.task_id].append(run)
        by_attempt[(run.task_id, run.attempt)].append(run)
    succeeded_rows: Counter[str] = Counter(
        task_id for (task_id, _), row in db.attempts.items() if row.outcome == "succeeded"
    )

    # 1. Every acknowledged submit exists.
    missing = [i for i in acked.values() if i not in db.tasks]
    check(
        "acknowledged submits exist",
        len(acked) == len(tasks) and not missing,
        f"{submitted.acknowledged} submits acknowledged ({len(acked)} of {len(tasks)} tasks, "
        f"{len(submitted.duplicates)} repeated keys); {len(missing)} missing from the db",
    )

    # 2. Every task ended; every acknowledged one succeeded.
    states = Counter(row.state for row in db.tasks.values())
    open_tasks = sum(n for state, n in states.items() if state not in TERMINAL)
    check(
        "every task terminal",
        open_tasks == 0,
        f"{len(db.tasks) - open_tasks} of {len(db.tasks)} tasks in the db terminal "
        f"({', '.join(f'{s} {n}' for s, n in sorted(states.items()))})",
    )
    ok = sum(1 for i in acked_ids if i in db.tasks and db.tasks[i].state == "succeeded")
    check(
        "every acknowledged task succeeded",
        ok == len(acked_ids) == len(tasks),
        f"{ok} of {len(acked_ids)} succeeded",
    )

    # 3. Keys: one task per key, repeated submits get it back, one success each.
    keyed = {t.n: t.key for t in tasks if t.key is not None}
    by_key: Counter[str] = Counter(row.key for row in db.tasks.values() if row.key is not None)
    key_task = {row.key: task_id for task_id, row in db.tasks.items() if row.key is not None}
    bad_keys = [
        key for n, key in keyed.items() if by_key[key] != 1 or key_task.get(key) != acked.get(n)
    ]
    check(
        "keyed: one task per key",
        not bad_keys and len(by_key) == len(keyed),
        f"{len(keyed) - len(bad_keys)} of {len(keyed)} keys name exactly the acknowledged task",
    )
    good_repeats = sum(
        1 for n, task_id, created in submitted.duplicates if not created and task_id == acked[n]
    )
    check(
        "keyed: repeated submits return the first task",
        good_repeats == len(submitted.duplicates),
        f"{good_repeats} of {len(submitted.duplicates)} returned it with created=false",
    )
    once = sum(1 for n in keyed if succeeded_rows[acked.get(n, "")] == 1)
    check(
        "keyed: exactly one successful attempt",
        once == len(keyed),
        f"{once} of {len(keyed)} keyed tasks succeeded exactly once",
    )

    # 4. Attempt bookkeeping: rows 1..attempt for every task, one success for each
    # succeeded task (its last attempt), none for the others.
    rows_by_task: dict[str, list[int]] = defaultdict(list)
    for task_id, attempt in db.attempts:
        rows_by_task[task_id].append(attempt)
    bad_rows = 0
    for task_id, row in db.tasks.items():
        last = db.attempts.get((task_id, row.attempt))
        if (
            sorted(rows_by_task[task_id]) != list(range(1, row.attempt + 1))
            or succeeded_rows[task_id] != (1 if row.state == "succeeded" else 0)
            or (row.state == "succeeded" and (last is None or last.outcome != "succeeded"))
        ):
            bad_rows += 1
    check(
        "attempt rows 1..n, one success per succeeded task",
        bad_rows == 0,
        f"{len(db.tasks) - bad_rows} of {len(db.tasks)} tasks consistent",
    )

    # 5. Nothing ran after its task ended.
    late = 0
    for run in runs:
        ended = db.tasks[run.task_id].finished_at if run.task_id in db.tasks else None
        late += ended is not None and run.start > ended + EPSILON_S
    check(
        "no run started after its task ended",
        late == 0,
        f"{late} of {len(runs)} runs started after their task's finished_at",
    )

    # 6. One attempt never ran on two workers at once.
    def until(r: Run) -> float:
        return r.end if r.end is not None else killed.get(r.pid, float("inf"))

    overlapping = reused = 0
    for held in by_attempt.values():
        if len({r.pid for r in held}) < 2:
            continue
        reused += 1
        overlapping += any(
            a.pid != b.pid and a.start < until(b) and b.start < until(a)
            for i, a in enumerate(held)
            for b in held[i + 1 :]
        )
    check(
        "no attempt ran on two workers at once",
        overlapping == 0,
        f"{overlapping} overlapping of {len(by_attempt)} executed attempts "
        f"({reused} attempt numbers ran in more than one process)",
    )

    # 7. Every run is accounted for: recorded by the store (succeeded or failed, on the
    # same worker), ended but its lease was lost, or cut by a kill.
    recorded = refused = cut = 0
    unexplained: list[Run] = []
    matched: set[tuple[str, int]] = set()
    for run in runs:
        stored = db.attempts.get((run.task_id, run.attempt))
        outcome = stored.outcome if stored else ""
        expected = {"ok": "succeeded", "fail": "failed"}.get(run.outcome or "")
        if (
            run.end is not None
            and outcome == expected
            and stored
            and pid_of(stored.worker) == run.pid
        ):
            recorded += 1
            matched.add((run.task_id, run.attempt))
        elif run.end is not None and outcome == "lost":
            refused += 1
        elif run.end is None and run.pid in killed:
            cut += 1
        else:
            unexplained.append(run)
    finished_rows = [k for k, r in db.attempts.items() if r.outcome in ("succeeded", "failed")]
    unmatched_rows = [k for k in finished_rows if k not in matched]
    check(
        "every recorded attempt has its run in a journal",
        not unmatched_rows and not malformed,
        f"{len(finished_rows) - len(unmatched_rows)} of {len(finished_rows)} succeeded/failed "
        f"attempts match a journal 'end' on their worker; {malformed} malformed journal lines",
    )
    check(
        "every run accounted for",
        not unexplained and recorded + refused + cut == len(runs),
        f"{len(runs)} runs = {recorded} recorded + {refused} ended but lost their lease "
        f"+ {cut} cut by a kill; {len(unexplained)} unexplained",
    )

    # 8. Failures only where planned: the first attempt of a failing-once task.
    failed_rows = [k for k, r in db.attempts.items() if r.outcome == "failed"]
    wrong_failures = [
        (task_id, attempt)
        for task_id, attempt in failed_rows
        if attempt != 1 or not planned[db.tasks[task_id].n].fail_once
    ]
    check(
        "failures only on failing-once first attempts",
        not wrong_failures,
        f"{len(failed_rows)} failed attempts, {len(wrong_failures)} unexpected",
    )

    # 9. Delayed tasks did not start early.
    early = delayed = 0
    for task_id, row in db.tasks.items():
        delay = planned[row.n].delay
        if delay is None:
            continue
        delayed += 1
        early += any(r.start < row.created_at + delay - EPSILON_S for r in by_task[task_id])
    check(
        "delayed tasks did not start early",
        early == 0,
        f"{early} of {delayed} delayed tasks started before created_at + delay",
    )

    lost_rows = [k for k, r in db.attempts.items() if r.outcome == "lost"]
    never_started = sum(1 for k in lost_rows if k not in by_attempt)
    dead, cancelled, expired = (states.get(s, 0) for s in ("dead", "cancelled", "expired"))
    failing = sum(t.fail_once for t in tasks)
    batches = f"{submitted.batches} / {submitted.retried_batches}"
    # A keyed task whose batch committed just before a kill: the retry found it.
    refound = sum(1 for created in submitted.created.values() if not created)
    errors = ", ".join(f"{k} {v}" for k, v in submitted.errors.most_common()) or "0"
    counts: list[tuple[str, object]] = [
        ("tasks planned", len(tasks)),
        ("submits acknowledged (incl. repeated keys)", submitted.acknowledged),
        ("  answered created=false to their first submit", refound),
        ("tasks in the db", len(db.tasks)),
        ("  committed but never acknowledged", len(db.tasks) - len(acked_ids)),
        ("succeeded", states.get("succeeded", 0)),
        ("dead / cancelled / expired", f"{dead} / {cancelled} / {expired}"),
        ("keyed / delayed / failing-once (planned)", f"{len(keyed)} / "
         f"{sum(t.delay is not None for t in tasks)} / {failing}"),
        ("runs (journal starts)", len(runs)),
        ("  recorded / ended, lease lost / cut by a kill", f"{recorded} / {refused} / {cut}"),
        ("attempts in the db", len(db.attempts)),
        ("retries (failed attempts)", len(failed_rows)),
        ("lost attempts (never started)", f"{len(lost_rows)} ({never_started})"),
        ("stale results refused", db.events.get("stale_result", 0)),
        ("tasks handed back", db.events.get("handed_back", 0)),
        ("batches / retried after an error", batches),
        ("submit errors", errors),
    ]  # fmt: skip
    return checks, counts


def logged_errors(directory: Path) -> list[str]:
    """ERROR lines and tracebacks the server and worker processes wrote."""
    found = []
    for path in sorted(directory.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
                found.append(f"{path.name}: {line}")
    return found


# -- the run ---------------------------------------------------------------------------


@dataclass
class Options:
    tasks: int = 5000
    server_kills: int = 3
    worker_kills: int = 5
    seed: int | None = None
    workers: int = 3
    concurrency: int = 8
    port: int | None = None
    window: float | None = None
    settle: float = 180.0
    deadline: float = 300.0
    keyed: float = 0.2
    delayed: float = 0.2
    failing: float = 0.1
    duplicates: float = 0.25
    max_down: float = 1.5
    keep: bool = False
    backend: str = "sqlite"


def parse(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=5000, help="tasks to submit (default 5000)")
    p.add_argument("--server-kills", type=int, default=3, help="server SIGKILLs (default 3)")
    p.add_argument("--worker-kills", type=int, default=5, help="worker SIGKILLs (default 5)")
    p.add_argument("--seed", type=int, default=None, help="seed of the load and the chaos")
    p.add_argument("--workers", type=int, default=3, help="worker processes (default 3)")
    p.add_argument("--concurrency", type=int, default=8, help="slots per worker (default 8)")
    p.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    p.add_argument(
        "--window", type=float, default=None,
        help="seconds over which submits and kills are spread (default: tasks/250, >= 8)",
    )  # fmt: skip
    p.add_argument("--settle", type=float, default=180.0, help="wait for all tasks to end")
    p.add_argument("--deadline", type=float, default=300.0, help="bound on the whole run")
    p.add_argument(
        "--max-down", type=float, default=1.5,
        help="longest pause before a killed server restarts (default 1.5s)",
    )  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = p.parse_args(argv)
    if args.tasks < 1 or args.workers < 1 or args.concurrency < 1:
        p.error("--tasks, --workers and --concurrency must be at least 1")
    if args.max_down < 0.2:
        p.error("--max-down must be at least 0.2 seconds")
    if args.server_kills < 0 or args.worker_kills < 0:
        p.error("kill counts cannot be negative")
    return Options(
        tasks=args.tasks, server_kills=args.server_kills, worker_kills=args.worker_kills,
        seed=args.seed, workers=args.workers, concurrency=args.concurrency, port=args.port,
        window=args.window, settle=args.settle, deadline=args.deadline, max_down=args.max_down,
        keep=args.keep, backend=args.backend,
    )  # fmt: skip


@contextlib.contextmanager
def watchdog(seconds: float, cluster: Cluster) -> Iterator[None]:
    """The overall bound: past it, kill every process and exit, whatever is blocked."""

    def fire() -> None:
        log(f"FAIL: the run exceeded its overall deadline of {seconds:g}s; killing everything")
        cluster.stop()
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the clean-up below


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1_000_000)
    window = opts.window if opts.window is not None else max(8.0, opts.tasks / 250)
    began = time.monotonic()

    def elapsed() -> float:
        return time.monotonic() - began

    tmp = Path(tempfile.mkdtemp(prefix="sluice-chaos-"))
    database = create_database(opts.backend, tmp)
    cluster = Cluster(tmp, opts.port or free_port(), opts.concurrency, database)
    log(
        f"chaos: seed {seed}, {opts.tasks} tasks, {opts.server_kills} server kills, "
        f"{opts.worker_kills} worker kills, {opts.workers} workers x {opts.concurrency} slots, "
        f"window {window:g}s, port {cluster.port}, {opts.backend}, data in {tmp}"
    )
    passed = False
    stop = threading.Event()
    try:
        with watchdog(opts.deadline, cluster):
            passed = _run(opts, seed, window, cluster, elapsed, stop)
    except Exception as exc:
        log(f"FAIL: {type(exc).__name__}: {exc}")
        if not isinstance(exc, DeadlineExceeded | RuntimeError | subprocess.SubprocessError):
            log(traceback.format_exc())
        log(cluster.tail_logs())
    finally:
        stop.set()
        cluster.stop()
        log(f"took {elapsed():.1f}s")
        if passed and not opts.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            drop_database(database)
        else:
            log(f"data kept in {tmp} ({database})")
    log("RESULT: PASS" if passed else "RESULT: FAIL")
    return 0 if passed else 1


def _run(
    opts: Options,
    seed: int,
    window: float,
    cluster: Cluster,
    elapsed: Callable[[], float],
    stop: threading.Event,
) -> bool:
    deadline = time.monotonic() + opts.deadline - 10  # leave room for the audit
    tasks = plan_load(opts.tasks, seed, opts.keyed, opts.delayed, opts.failing)
    batches = plan_batches(tasks, seed, opts.duplicates)

    cluster.create_tenant()
    cluster.start_server(timeout=60)
    with sluice.Client(cluster.url, cluster.api_key) as client:
        client.put_function(FUNCTION, {"retry": msgspec.to_builtins(RETRY)})
    for _ in range(opts.workers):
        cluster.start_worker()
    cluster.wait_healthy(timeout=60, workers=opts.workers)
    log(f"[{elapsed():6.2f}s] server and {opts.workers} workers up; submitting")

    record = ChaosLog()
    threads = chaos_threads(
        cluster, seed, opts.server_kills, opts.worker_kills, window, opts.max_down, elapsed,
        stop, record,
    )  # fmt: skip
    submitted = Submitted()
    submit_began = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        submit_all(cluster, batches, window, deadline, submitted, stop)
    except BaseException:
        stop.set()  # the chaos threads end their schedule at once
        raise
    finally:
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise DeadlineExceeded("the chaos schedule did not finish in time")
    if record.errors:
        raise RuntimeError(f"chaos failed: {record.errors[0]!r}")
    log(
        f"[{elapsed():6.2f}s] {submitted.acknowledged} submits acknowledged in "
        f"{submitted.finished_at - submit_began:.1f}s; waiting for every task to end"
    )
    # The wait reads the database directly (read-only), as an auditor would.
    ids = list(submitted.ids.values())
    settle_by = min(deadline, time.monotonic() + opts.settle)
    next_report = time.monotonic() + 5
    while True:
        total, pending, missing = open_count(cluster.db, ids)
        if pending == 0 and missing == 0:
            break
        if time.monotonic() > settle_by:
            log(f"FAIL: {pending} of {total} tasks still open, {missing} acknowledged missing")
            break
        if time.monotonic() > next_report:
            log(f"[{elapsed():6.2f}s] {total - pending} of {total} tasks ended")
            next_report += 5
        time.sleep(0.2)
    settled = elapsed()
    ended = "all tasks ended; " if pending == 0 else ""
    log(f"[{settled:6.2f}s] {ended}stopping workers and server")
    cluster.stop_gracefully(timeout=20)

    runs, malformed = read_journal(cluster.journal)
    db = read_db(cluster.db)
    checks, counts = audit(tasks, submitted, db, runs, malformed, cluster.killed)
    errors = logged_errors(cluster.tmp)
    checks.append(
        Check(
            "no errors logged by servers and workers",
            not errors,
            f"{len(errors)} ERROR or traceback lines"
            + "".join(f"\n        {e}" for e in errors[:5]),
        )
    )
    checks.insert(
        0,
        Check(
            "chaos happened",
            record.server_kills == opts.server_kills and record.worker_kills == opts.worker_kills,
            f"{record.server_kills} of {opts.server_kills} server kills, "
            f"{record.worker_kills} of {opts.worker_kills} worker kills",
        ),
    )
    counts += [
        ("server kills / worker kills", f"{record.server_kills} / {record.worker_kills}"),
        ("seed", seed),
        ("time to settle", f"{settled:.1f}s"),
    ]
    log("")
    log("checks")
    for c in checks:
        log(f"  {'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}")
    log("")
    log("summary")
    width = max(len(name) for name, _ in counts)
    for name, value in counts:
        log(f"  {name:<{width}}  {value}")
    log("")
    return all(c.passed for c in checks)


if __name__ == "__main__":
    sys.exit(main())
