"""`make bench-peers`: Sluice and the Python task queues people use today, one after
another on this machine, with the same workloads (issue 8).

Peers are installed at pinned versions into their own virtualenv, `.venv-peers`;
Sluice runs from the repository's `.venv`. Each run of a system is one
`bench.peers.driver` process in that system's virtualenv, bounded in time; the driver
and every process it started are killed by process group whatever happens.
Figures are the median of 3 runs with min-max; `--quick` runs small sizes once and
writes nothing. The table goes to bench/PEERS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.peers.base import PGIDS_ENV

ROOT = Path(__file__).resolve().parents[2]
SLUICE_VENV = ROOT / ".venv"
PEERS_VENV = ROOT / ".venv-peers"
PEERS_MD = ROOT / "bench" / "PEERS.md"
# Every run's raw figures, so `--only NAME` re-measures one system and keeps the rest.
RESULTS_JSON = ROOT / "bench" / "peers" / "results.json"
FAIRNESS_JSON = ROOT / "bench" / "peers" / "fairness.json"
PINS = [
    "celery[redis]==5.7.0",
    "dramatiq[redis]==2.2.1",
    "rq==3.0.0",
    "arq==0.25.0",
    "huey==3.5.4",
    "taskiq==0.13.0",
    "taskiq-redis==1.2.4",
    "procrastinate==3.10.0",  # psycopg 3 is a core dependency since 3.0
    "redis==8.1.0",
]
# name: (plug-in module, virtualenv, backend argument, services it needs)
SYSTEMS: dict[str, tuple[str, Path, str, tuple[str, ...]]] = {
    "sluice-sqlite": ("sluice_", SLUICE_VENV, "sqlite", ()),
    "sluice-postgres": ("sluice_", SLUICE_VENV, "postgres", ("postgres",)),
    "celery": ("celery_", PEERS_VENV, "", ("redis",)),
    "dramatiq": ("dramatiq_", PEERS_VENV, "", ("redis",)),
    "rq": ("rq_", PEERS_VENV, "", ("redis",)),
    "arq": ("arq_", PEERS_VENV, "", ("redis",)),
    "huey": ("huey_", PEERS_VENV, "", ("redis",)),
    "taskiq": ("taskiq_", PEERS_VENV, "", ("redis",)),
    "procrastinate": ("procrastinate_", PEERS_VENV, "", ("postgres",)),
}
SERVICES = {
    "redis": (
        6379,
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
         "--save", "", "--appendonly", "no"],
    ),
    "postgres": (5432, ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start"]),
}  # fmt: skip
FULL = {"tasks": 20_000, "single": 5_000, "latency": 2_000, "delayed": 1_000, "stall": 30}
QUICK = {"tasks": 2_000, "single": 500, "latency": 200, "delayed": 100, "stall": 15}
FAIR_FULL = {"flood": 10_000, "fair": 100, "stall": 30}
FAIR_QUICK = {"flood": 1_000, "fair": 20, "stall": 15}
RUN_TIMEOUT_S = {"full": 600, "quick": 180}


def ensure_peers_venv() -> None:
    """Create .venv-peers and install the pinned peers, once per set of pins."""
    stamp = PEERS_VENV / f".pins-{hashlib.sha256(' '.join(PINS).encode()).hexdigest()[:12]}"
    if stamp.exists():
        return
    base_python = getattr(sys, "_base_executable", sys.executable)
    if not (PEERS_VENV / "bin" / "python").exists():
        print(f"creating {PEERS_VENV.name}", flush=True)
        subprocess.run([base_python, "-m", "venv", str(PEERS_VENV)], check=True)
    (PEERS_VENV / ".gitignore").write_text("*\n")  # keep it out of `git status`
    print(f"installing into {PEERS_VENV.name}: {' '.join(PINS)}", flush=True)
    pip = [str(PEERS_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *PINS], check=True)
    for old in PEERS_VENV.glob(".pins-*"):
        old.unlink()
    stamp.touch()


def reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


def ensure_service(name: str) -> bool:
    """True if the service answers, starting it if it is down and installed."""
    port, start = SERVICES[name]
    if reachable(port):
        return True
    if shutil.which(start[0]) is None:
        print(f"{name}: nothing on 127.0.0.1:{port} and `{start[0]}` is not installed")
        return False
    print(f"{name}: nothing on 127.0.0.1:{port}; starting it with `{' '.join(start)}`")
    subprocess.run(start, check=False)
    for _ in range(50):
        if reachable(port):
            return True
        time.sleep(0.2)
    print(f"{name}: still not reachable on 127.0.0.1:{port}")
    return False


def kill_groups(pgids: list[int], sig: int) -> None:
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def run_once(
    name: str, sizes: dict[str, int], timeout_s: float, scenario: str = "core"
) -> dict[str, Any]:
    module, venv, backend, _ = SYSTEMS[name]
    with tempfile.TemporaryDirectory(prefix=f"peers-{name}-") as tmp:
        work = Path(tmp)
        pgids = work / "pgids"
        out = work / "result.json"
        argv = [str(venv / "bin" / "python"), "-m", "bench.peers.driver", module,
                "--work", tmp, "--out", str(out),
                *(f"--{k}={v}" for k, v in sizes.items())]  # fmt: skip
        if backend:
            argv.append(f"--backend={backend}")
        argv.append(f"--scenario={scenario}")
        env = {**os.environ, "PYTHONPATH": str(ROOT), PGIDS_ENV: str(pgids)}
        log = open(work / "driver.log", "wb")  # noqa: SIM115
        driver = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            driver.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            print(f"  {name}: over {timeout_s:.0f} s, stopping it", flush=True)
            driver.send_signal(signal.SIGTERM)  # the driver stops its workers
            with contextlib.suppress(subprocess.TimeoutExpired):
                driver.wait(timeout=20)
        finally:
            started = [int(x) for x in pgids.read_text().split()] if pgids.exists() else []
            kill_groups([driver.pid, *started], signal.SIGKILL)
            driver.wait()
            log.close()
        if out.exists():
            return dict(json.loads(out.read_text()))
        tail = (work / "driver.log").read_text(errors="replace")[-2000:]
        for proc_log in sorted(work.glob("proc-*.log")):
            tail += f"\n--- {proc_log.name}\n" + proc_log.read_text(errors="replace")[-1000:]
        return {"name": name, "error": f"exit {driver.returncode}\n{tail}"}


# -- figures ------------------------------------------------------------------------
FIGURES = [  # (key, label, higher is better)
    ("single_rate", "enqueue, single (tasks/s)", True),
    ("bulk_rate", "enqueue, bulk API (tasks/s)", True),
    ("drain_rate", "drain, 2 processes (tasks/s)", True),
    ("latency_ms.p50", "submit→start p50 (ms)", False),
    ("latency_ms.p95", "submit→start p95 (ms)", False),
    ("latency_ms.p99", "submit→start p99 (ms)", False),
    ("lateness_ms.p50", "delayed lateness p50 (ms)", False),
    ("lateness_ms.p99", "delayed lateness p99 (ms)", False),
]


def figure(result: dict[str, Any], key: str) -> float | None:
    value: Any = result
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def summary(runs: list[dict[str, Any]], key: str) -> tuple[float, float, float] | None:
    values = [v for r in runs if (v := figure(r, key)) is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def cell(s: tuple[float, float, float] | None, runs: int) -> str:
    if s is None:
        return "—"
    fmt = "{:,.0f}" if s[0] >= 100 else "{:,.1f}" if s[0] >= 10 else "{:.2f}"
    text = fmt.format(s[0])
    return text if runs == 1 else f"{text} ({fmt.format(s[1])}-{fmt.format(s[2])})"


def print_result(r: dict[str, Any]) -> None:
    if "error" in r:
        print(f"  FAILED: {r['error']}", flush=True)
        return
    parts = [f"{label.split(' (')[0]} {v:,.1f}" for key, label, _ in FIGURES
             if (v := figure(r, key)) is not None]  # fmt: skip
    parts.append(f"tasks {r['tasks']:,}, lost {r['lost']}, duplicated {r['duplicated']}")
    print("  " + "; ".join(parts), flush=True)


def table(results: dict[str, list[dict[str, Any]]], runs: int) -> list[str]:
    names = list(results)
    lines = ["| figure | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for key, label, _ in FIGURES:
        row = [cell(summary([r for r in results[n] if "error" not in r], key), runs) for n in names]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    checks = []
    for n in names:
        ok = [r for r in results[n] if "error" not in r]
        lost, dup = sum(r["lost"] for r in ok), sum(r["duplicated"] for r in ok)
        failed = len(results[n]) - len(ok)
        checks.append(f"{lost} / {dup}" + (f", {failed} run(s) failed" if failed else ""))
    lines.append("| lost / duplicated (all runs) | " + " | ".join(checks) + " |")
    return lines


def ratios(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Sluice (SQLite, and PostgreSQL) over each peer, per figure: > 1 means Sluice is
    better (faster rate, or lower latency)."""
    lines = []
    for mine in ("sluice-sqlite", "sluice-postgres"):
        if mine not in results:
            continue
        peers = [n for n in results if not n.startswith("sluice")]
        lines += [f"Sluice ({mine.split('-')[1]}) / peer, > 1 means Sluice is better:", "",
                  "| figure | " + " | ".join(peers) + " |",
                  "| --- |" + " ---: |" * len(peers)]  # fmt: skip
        for key, label, higher in FIGURES:
            s = summary(results[mine], key)
            row = []
            for p in peers:
                t = summary(results[p], key)
                if s is None or t is None or not s[0] or not t[0]:
                    row.append("—")
                else:
                    row.append(f"{(s[0] / t[0]) if higher else (t[0] / s[0]):.2f}x")
            lines.append(f"| {label} | " + " | ".join(row) + " |")
        lines.append("")
    return lines


def machine() -> str:
    from bench.run import machine as describe

    return describe()


def write_peers_md(results: dict[str, list[dict[str, Any]]], runs: int) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Sluice and its peers",
        "",
        f"Written by `make bench-peers` (bench/peers/run.py) on {now}.",
        f"Machine: {machine()}. Each figure is the median of {runs} runs (min-max).",
        "",
        *table(results, runs),
        "",
        *ratios(results),
        "## Versions and configuration",
        "",
    ]
    for name, rs in results.items():
        ok = next((r for r in rs if "error" not in r), None)
        if ok:
            lines.append(f"- **{ok['name']} {ok['version']}** — workers: {ok['workers_config']}; "
                         f"{ok['config']} (measured {ok.get('measured', now)})")  # fmt: skip
        else:
            lines.append(f"- **{name}** — every run failed")
    lines += fairness_section()
    lines += ["", *ANALYSIS, "## Caveats", "", *CAVEATS, ""]
    PEERS_MD.write_text("\n".join(lines))


def fairness_section() -> list[str]:
    """The A/B flood on every system, from the last `--scenario fairness` run."""
    if not FAIRNESS_JSON.exists():
        return []
    saved: dict[str, dict[str, Any]] = json.loads(FAIRNESS_JSON.read_text())
    lines = [
        "",
        "## Fairness: a quiet tenant beside a flood",
        "",
        "Tenant B sends 100 tasks one every 10 ms, alone, then again right after tenant A "
        "enqueued a backlog at once; 2 worker processes shared by both. Figures are B's "
        "submit→start latency (ms) and how much of A's backlog was still waiting when B's "
        "last task started (one run each; `make bench-peers SCENARIO=fairness`).",
        "",
        "| system | B alone p50 / p99 | B beside A's backlog p50 / p99 | A's backlog | "
        "left when B was done | lost / duplicated | how tenants are run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in SYSTEMS:
        r = saved.get(name)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {name} | failed | | | | | |")
            continue
        alone, beside = r.get("b_alone_ms") or {}, r.get("b_flood_ms") or {}

        def ms(d: dict[str, float], key: str) -> str:
            return f"{d[key]:,.1f}" if key in d else "—"

        lines.append(
            f"| {r['name']} | {ms(alone, 'p50')} / {ms(alone, 'p99')} | "
            f"{ms(beside, 'p50')} / {ms(beside, 'p99')} | {r['flood']:,} | "
            f"{r['flood_left_at_b_done']:,} | {r['lost']} / {r['duplicated']} | "
            f"{r['config']} (measured {r.get('measured', '?')}) |"
        )
    return lines


ANALYSIS = [
    "## Where Sluice is slower, and why",
    "",
    "Against Huey and Celery, measured the same hour on the same machine as Sluice "
    "(2026-12-06 19:55-20:01 UTC, an Intel Xeon VM in a slow hour; the other peers' rows "
    "are from 2026-11-27, on another VM: compare across dates with care). These VMs move "
    "by up to 2x between hours: Huey's single enqueue was 6,193/s now, 7,293/s at 18:47 "
    "the same evening (bench/RESULTS.md), 8,043/s at 14:43 and 3,753/s at 06:25; and "
    "between runs of the same hour: Huey's submit→start p50 was 0.35, 0.43, 0.32 and "
    "0.35 ms in four runs between 13:47 and 14:49, 0.65 ms now. Sluice's no-op is a "
    "plain `def`, as most users write, run with `sluice worker`'s defaults. `make "
    "bench-floors` gives the physical floors these figures are read against "
    "(bench/RESULTS.md).",
    "",
    "- **Single enqueue** (one call at a time): Sluice on SQLite 3,273/s, 0.53x Huey's "
    "6,193/s; on PostgreSQL 1,580/s, 0.92x Celery's 1,715/s this run (4,121 and 1,970/s, "
    "0.57x and 0.93x, at 18:47 in a fast hour). "
    "The sync client sends each submit as a frame on a kept-open *submit stream* "
    "(one HTTP upgrade per connection, docs/api.md). A submit costs "
    "the server about 165 µs of CPU on SQLite: the one-row durable commit about 50 µs "
    "(system calls: two writes per page it changes, and locks), the answer's send() on "
    "loopback TCP, the event loop's polling and reads, and the rest Python spread over "
    "~30 calls. Huey's enqueue is one Redis command, which commits nothing. On "
    "PostgreSQL each commit waits for the disk (fdatasync; a bare one-row insert and "
    "commit is 310 µs here, 180 µs of it the flush; fdatasync alone 117 µs by "
    "pg_test_fsync), against Celery's whole enqueue to a Redis that does not. "
    "Producers who need rate send batches (`submit_many`) or submit concurrently: "
    "32 concurrent producers share commits (`make bench`).",
    "- **Submit→start** on SQLite: p50 0.56 ms against Huey's 0.65 ms, p99 1.35 ms "
    "against 1.40 ms this run; at 18:47, 0.42 against 0.42 and 0.82 against 0.72 ms; at "
    "14:43, 0.39 against 0.35. A submit that finds an idle "
    "worker slot commits the task already leased to it, in one row written once "
    "(direct dispatch: no dispatch round), and writes the push to the worker's socket "
    "in the same step, before the producer's answer; the worker starts a plain function within the "
    "delivery. What remains is the durable commit on the path and each process's "
    "Python: in the worker, 67 µs from the frame's arrival to the function's start, of "
    "which the websocket library's parsing and wake-up are 36 µs (bench/RESULTS.md, "
    "2026-12-06 14:30). A Redis peer's worker wakes from BRPOP with the task in hand. "
    "On PostgreSQL p99 2.99 ms, 2.1x Huey's.",
    "- **Drain** (Sluice 3.3x Huey on SQLite this run, 2.2x on PostgreSQL; 3.6x and "
    "2.3x at 18:47). A worker "
    "holds tasks ahead of its slots while the server sends it all it can take "
    "(prefetch: what its slots finish within 5 ms), and a plain function whose calls "
    "prove shorter than a thread hand-off runs on the worker's loop.",
    "- **Delayed lateness p99**: Celery holds delayed tasks in its workers' memory and "
    "started them 2.23 ms late at p99 this hour; Sluice keeps them in the store "
    "(durable) and started them 1.64 ms late on SQLite, 2.90 ms on PostgreSQL: a task due "
    "soon is leased to an idle worker 10 ms before its time and the worker starts it "
    "then (`SLUICE_DELAY_LEAD_S`, docs/scheduling.md).",
    "- **Bulk** (`submit_many`, 1,000 a call): 90,662/s on SQLite this run (86,662-"
    "98,289); 105,668 at 18:47 and 118,408 at 14:43 in fast hours, 62,208 at 17:44. A "
    "batch's tasks go in "
    "by multi-row INSERTs that bind the values every row shares once; what is left is "
    "the server's CPU, 6-11 µs a task depending on the hour: its event loop decoding, "
    "building and answering, and its SQLite writer thread, where SQLite's own insert "
    "into the task table and its four indexes is 4.5-5 µs (bench/RESULTS.md).",
    "- PostgreSQL rows are slower than SQLite's (a commit there is a round trip and a "
    "WAL flush, and the database shares the 2 cores with the client and the workers).",
    "",
]

CAVEATS = [
    "- One shared 2-core VM: the client, the broker or database, and 2 worker processes "
    "compete for the same 2 cores; the systems ran one after another, never together.",
    "- Enqueue rates are one client calling the sync API in a loop (arq and Taskiq: their "
    "async API awaited one call at a time); bulk rates use the peer's bulk API in chunks "
    "of 1,000 where one exists.",
    "- Drain: the tasks are queued before the workers start; the rate is the number of "
    "tasks over first start → last start, read from the tasks' own records, so worker "
    "boot time is excluded.",
    "- Latency: one task every 5 ms to the 2 idle worker processes; client clock just "
    "before the enqueue call → worker clock when the task body starts. Peers that poll "
    "(arq 0.5 s, Procrastinate's fallback, RQ's scheduler) pay their documented defaults.",
    "- Delayed lateness: tasks due 2 s after enqueue, one every 2 ms; lateness is start - due.",
    "- Exactly-once: every no-op task appends its id to one file; lost and duplicated "
    "are counted after the workers stop.",
    "- arq's first full run was stopped at its 600 s limit by the person running the "
    "benchmark (its driver was held while tests ran); arq was measured again, alone, "
    "with `--only arq`, and its row is those 3 runs.",
    "- Sluice, Huey and Celery were measured again on 2026-12-06 at 19:55 UTC (`--only "
    "sluice-sqlite --only sluice-postgres --only huey --only celery`); their dates are in "
    "the configuration lines. Machines and hours differ a lot (Huey's single enqueue was "
    "5,141/s on 2026-12-03 and 8,131/s on 2026-12-04 17:34, 7,765/s at 23:56 on another "
    "VM), so the 2026-11-27 rows of the other peers compare only roughly; compare Sluice "
    "with Huey and Celery, measured the same hour.",
    "- Sluice's fairness rows were measured again on 2026-12-06 at 15:21 UTC (`--scenario "
    "fairness --only sluice-sqlite --only sluice-postgres`; on 2026-12-04 at 21:32, B's "
    "p99 beside the flood was 4.4 ms on SQLite and 10.2 ms on PostgreSQL); the peers' "
    "fairness rows are from 2026-11-27, orders of magnitude apart either way.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run, no file")
    parser.add_argument("--only", action="append", choices=sorted(SYSTEMS), help="repeatable")
    parser.add_argument("--runs", type=int, default=None, help="3 (core), 1 (fairness)")
    parser.add_argument("--scenario", choices=["core", "fairness"], default="core")
    options = parser.parse_args()
    if options.scenario == "fairness":
        fairness_main(options)
        return
    names = options.only or list(SYSTEMS)
    runs = 1 if options.quick else options.runs or 3
    sizes = QUICK if options.quick else FULL
    timeout_s = RUN_TIMEOUT_S["quick" if options.quick else "full"]
    if any(SYSTEMS[n][1] == PEERS_VENV for n in names):
        ensure_peers_venv()
    up = {s: ensure_service(s) for s in {s for n in names for s in SYSTEMS[n][3]}}
    results: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        missing = [s for s in SYSTEMS[name][3] if not up[s]]
        if missing:
            print(f"{name}: skipped, {' and '.join(missing)} not reachable", flush=True)
            continue
        results[name] = []
        for n in range(runs):
            print(f"{name}: run {n + 1}/{runs}", flush=True)
            results[name].append(run_once(name, sizes, timeout_s))
            print_result(results[name][-1])
    print("\n" + "\n".join(table(results, runs)) + "\n")
    if not options.quick and results:
        merged = merge_saved(results)
        write_peers_md(merged, runs)
        print(f"written to {PEERS_MD.relative_to(ROOT)} and {RESULTS_JSON.relative_to(ROOT)}")


def fairness_main(options: argparse.Namespace) -> None:
    """The A/B flood on each system, one after another; saved and written to PEERS.md."""
    names = options.only or list(SYSTEMS)
    sizes = FAIR_QUICK if options.quick else FAIR_FULL
    timeout_s = RUN_TIMEOUT_S["quick" if options.quick else "full"]
    if any(SYSTEMS[n][1] == PEERS_VENV for n in names):
        ensure_peers_venv()
    up = {s: ensure_service(s) for s in {s for n in names for s in SYSTEMS[n][3]}}
    results: dict[str, dict[str, Any]] = {}
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    for name in names:
        if not all(up[s] for s in SYSTEMS[name][3]):
            print(f"{name}: skipped, a service is not reachable", flush=True)
            continue
        for n in range(options.runs or 1):
            print(f"{name}: fairness run {n + 1}", flush=True)
            r = run_once(name, sizes, timeout_s, "fairness")
            r["measured"] = today
            results[name] = r  # the last run stands
            if "error" in r:
                print(f"  FAILED: {r['error']}", flush=True)
                continue
            alone, beside = r["b_alone_ms"] or {}, r["b_flood_ms"] or {}
            print(
                f"  B alone p99 {alone.get('p99', 0):,.1f} ms; beside A's {r['flood']:,} "
                f"p99 {beside.get('p99', 0):,.1f} ms; A left {r['flood_left_at_b_done']:,}; "
                f"lost {r['lost']}, duplicated {r['duplicated']}",
                flush=True,
            )
    if options.quick or not results:
        return
    saved = json.loads(FAIRNESS_JSON.read_text()) if FAIRNESS_JSON.exists() else {}
    saved.update(results)
    FAIRNESS_JSON.write_text(json.dumps(saved, indent=1) + "\n")
    core = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    if core:
        write_peers_md(core, 3)
    print(f"written to {FAIRNESS_JSON.relative_to(ROOT)} and {PEERS_MD.relative_to(ROOT)}")


def merge_saved(results: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The systems measured now replace their saved runs; the others keep theirs (and
    their date: a row re-measured later says so in its configuration line)."""
    saved: dict[str, list[dict[str, Any]]] = {}
    if RESULTS_JSON.exists():
        saved = json.loads(RESULTS_JSON.read_text())
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    for rs in results.values():
        for r in rs:
            r.setdefault("measured", today)
    saved.update(results)
    merged = {name: saved[name] for name in SYSTEMS if name in saved}
    RESULTS_JSON.write_text(json.dumps(merged, indent=1) + "\n")
    return merged


if __name__ == "__main__":
    main()
