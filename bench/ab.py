"""`make bench-ab`: the hot path of two or more commits measured back to back.

A change that touches the hot path must say what it did to it. Runs on this machine
drift from hour to hour, so figures taken at different times cannot be compared; this
script checks each commit out into its own git worktree and alternates between them
(A B C, then B C A, ...) so every commit sees the same machine. Each commit is measured
with its own server, worker and SDK code (PYTHONPATH points at its worktree) and with
the default settings a user gets:

- batch submit: 50,000 tasks in batches of 1,000, by the async SDK (2 batches in
  flight) and by the sync SDK (one at a time);
- single submits: 10,240 tasks from 32 concurrent clients;
- one client's single submits (`--parts single`): 3,000 calls of the sync SDK, one at
  a time;
- drain: 20,000 queued no-op tasks, 2 worker processes x 256 slots (`--drain-slots`);
  `--parts drain_sync`: the same with a plain function;
- submit → start latency p50/p99: 2,000 tasks, one every 5 ms, to idle workers (an
  async no-op; `--parts latency_sync`: a plain one, as bench/peers measures);
- delayed lateness p50/p99 (`--parts delays`): 1,000 tasks one every 2 ms, each due 2 s
  later, to an idle worker;
- the noisy neighbour (`--parts noisy`): make bench's scenario, the quiet tenants' p99
  alone and beside the flood.

The median of the rounds is reported per commit, with each commit's change against the
first one. Nothing else should run on the machine meanwhile. A ref may carry settings
for its processes after `+`, to measure one commit with and without something:

    python -m bench.ab --refs 31cdb6f,HEAD --rounds 3 [--backend postgres]
    python -m bench.ab --refs HEAD+SLUICE_CAPTURE_LOGS=0,HEAD
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run inside a worktree: only names every measured commit's bench/run.py has.
DRIVER = """
import asyncio, json, sys
from bench.run import rig, bench_batch_submit, _single_submits, bench_drain, bench_latency, pct
port, backend, parts = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
slots = int(sys.argv[4])
out = {}
if "submit" in parts:
    with rig(port, backend) as r:
        out["batch_submit"], out["batch_submit_sync"] = bench_batch_submit(r, 50_000)
        out["single_submit"] = asyncio.run(_single_submits(r, 10_240, 32))
if "single" in parts:  # one sync client, one call at a time (as bench/peers measures)
    import time, sluice
    from bench.apps import noop
    with rig(port, backend) as r, sluice.Client(r.url, r.api_key) as client:
        noop.app.configure(url=r.url, api_key=r.api_key)
        noop.app.register()
        client.submit({"function": "noop"})
        began = time.perf_counter()
        for i in range(3_000):
            client.submit({"function": "noop", "args": [i]})
        out["one_client"] = 3_000 / (time.perf_counter() - began)
if "drain" in parts:  # async no-ops on 2 processes x slots, whatever the commit's defaults
    import inspect
    with rig(port, backend) as r:
        if "processes" in inspect.signature(bench_drain).parameters:  # before 2026-12-04
            out["drain"] = bench_drain(r, 20_000, processes=2, concurrency=slots)[0]
        else:
            from bench.apps import noop
            out["drain"] = bench_drain(r, 20_000, noop, concurrency=slots)[0]
if "drain_sync" in parts:  # the same with a plain function (what most users write)
    from bench.apps import noop_sync
    with rig(port, backend) as r:
        out["drain_sync"] = bench_drain(r, 20_000, noop_sync, concurrency=slots)[0]
if "latency" in parts:
    with rig(port, backend) as r:
        lat = bench_latency(r, 2_000, 0.005)
        out["latency_p50"], out["latency_p99"] = pct(lat, 50), pct(lat, 99)
if "latency_sync" in parts:  # the same with a plain function, as bench/peers measures
    import time, sluice
    from bench.run import wait_until
    with rig(port, backend) as r:
        workers = r.workers()
        client = sluice.Client(r.url, r.api_key)
        sent, next_at = {}, time.perf_counter()
        for i in range(2_000):
            next_at += 0.005
            t0 = time.time()
            sent[client.submit({"function": "noop_sync", "args": [i]}).id] = t0
            time.sleep(max(0.0, next_at - time.perf_counter()))
        client.close()
        count = "SELECT count(*) FROM attempts WHERE task_id IN ids(?)"
        wait_until(lambda: r.query(count, list(sent))[0][0] == len(sent), 60, "sync tasks")
        rows = r.query("SELECT task_id, started_at FROM attempts WHERE task_id IN ids(?)",
                       list(sent))
        r.stop_workers(workers)
        lat = [(started - sent[task_id]) * 1000 for task_id, started in rows]
        out["sync_p50"], out["sync_p99"] = pct(lat, 50), pct(lat, 99)
if "delays" in parts:  # 1,000 tasks one every 2 ms, each due 2 s later: start - run_at
    from bench.run import bench_delays
    with rig(port, backend) as r:
        late = bench_delays(r, 1_000, 2.0)
        out["delay_p50"], out["delay_p99"] = pct(late, 50), pct(late, 99)
if "noisy" in parts:  # make bench's noisy neighbour, with its settings
    from bench.flow import bench_noisy
    env = {"SLUICE_OVERLOAD_S": "2", "SLUICE_BACKPRESSURE_INTERVAL_S": "1",
           "SLUICE_OVERLOAD_MIN_BACKLOG": "200"}
    with rig(port, backend, env) as r:
        noisy = bench_noisy(r, 12.0)
        out["noisy_alone"] = noisy["noisy_bc_p99_alone"]
        out["noisy_beside"] = noisy["noisy_bc_p99_beside"]
print("AB " + json.dumps(out), flush=True)
"""

FIGURES = {
    "batch_submit": ("batch submit (tasks/s)", True),
    "batch_submit_sync": ("batch submit, sync SDK (tasks/s)", True),
    "single_submit": ("32 concurrent single submits (tasks/s)", True),
    "one_client": ("single submits, one sync client (tasks/s)", True),
    "drain": ("drain (tasks/s)", True),
    "drain_sync": ("drain, a plain function (tasks/s)", True),
    "latency_p50": ("submit→start p50 (ms)", False),
    "latency_p99": ("submit→start p99 (ms)", False),
    "sync_p50": ("submit→start p50, a plain function (ms)", False),
    "sync_p99": ("submit→start p99, a plain function (ms)", False),
    "delay_p50": ("delayed lateness p50 (ms)", False),
    "delay_p99": ("delayed lateness p99 (ms)", False),
    "noisy_alone": ("noisy neighbour: quiet tenants' p99 alone (ms)", False),
    "noisy_beside": ("noisy neighbour: quiet tenants' p99 beside the flood (ms)", False),
}


def _fmt(value: float) -> str:
    """Rates to 0.1, latencies in ms to 0.01 (at 0.1 ms a step of 2 ms is already 5 %)."""
    return f"{value:,.1f}" if value >= 100 else f"{value:,.2f}"


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def measure(
    tree: Path, port: int, backend: str, parts: str, settings: dict[str, str], slots: int
) -> dict[str, float]:
    env = {**os.environ, **settings, "PYTHONPATH": str(tree)}
    env.pop("SLUICE_DATABASE", None)
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(port), backend, parts, str(slots)],
        cwd=tree, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith("AB "):
            return dict(json.loads(line[3:]))
    raise SystemExit(f"bench-ab: {tree.name} failed:\n{done.stdout}\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refs", default="HEAD~1,HEAD", help="commits, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--port", type=int, default=8432)
    parser.add_argument(
        "--parts",
        default="submit,drain,latency",
        help="of submit, single, drain, drain_sync, latency, latency_sync, delays, noisy",
    )
    parser.add_argument(
        "--drain-slots", type=int, default=256,
        help="slots per worker process in the drain (10: `sluice worker`'s default)",
    )  # fmt: skip
    options = parser.parse_args()
    # Each entry: (label, commit, settings); a label is the entry as given, made unique.
    refs: list[tuple[str, str, dict[str, str]]] = []
    for entry in options.refs.split(","):
        ref, *pairs = entry.split("+")
        settings = dict(pair.split("=", 1) for pair in pairs)
        sha = git("rev-parse", "--short", ref)
        label = f"{ref} ({sha})" + "".join(f" {k}={v}" for k, v in settings.items())
        refs.append((label, sha, settings))
    runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in refs}
    with tempfile.TemporaryDirectory(prefix="sluice-ab-") as tmp:
        trees: dict[str, Path] = {}
        for _, sha, _ in refs:
            if sha not in trees:
                trees[sha] = Path(tmp) / sha
                git("worktree", "add", "--detach", str(trees[sha]), sha)
        try:
            for round_ in range(options.rounds):
                order = refs[round_ % len(refs) :] + refs[: round_ % len(refs)]
                for label, sha, settings in order:
                    figures = measure(
                        trees[sha],
                        options.port,
                        options.backend,
                        options.parts,
                        settings,
                        options.drain_slots,
                    )
                    runs[label].append(figures)
                    shown = ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
                    print(f"round {round_ + 1} {label}: {shown}", flush=True)
        finally:
            for tree in trees.values():
                git("worktree", "remove", "--force", str(tree))
    first = refs[0][0]
    medians = {
        label: {k: statistics.median(r[k] for r in rows) for k in FIGURES if k in rows[0]}
        for label, rows in runs.items()
    }
    head = "| figure | " + " | ".join(label for label, _, _ in refs) + " |"
    print(f"\n{options.backend}, median of {options.rounds} rounds\n\n{head}")
    print("| --- |" + " ---: |" * len(refs))
    for key, (figure, _) in FIGURES.items():
        if key not in medians[first]:
            continue
        cells = []
        for label, _, _ in refs:
            value = medians[label][key]
            change = (value / medians[first][key] - 1) * 100 if label != first else None
            cells.append(_fmt(value) + (f" ({change:+.1f} %)" if change is not None else ""))
        print(f"| {figure} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
