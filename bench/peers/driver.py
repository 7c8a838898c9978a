"""One run of every workload for one system, inside that system's virtualenv.

    python -m bench.peers.driver MODULE --work DIR --out FILE [sizes]

Enqueues `tasks` no-op tasks with no worker running (single calls, or `single` of them
singly and the rest through the bulk API), starts 2 worker processes and times the
drain, then sends `latency` tasks one every 5 ms to the idle workers, then `delayed`
tasks one every 2 ms each due 2 s later. Workers are stopped, and the run log is checked:
every task ran exactly once, or the lost and duplicated ones are counted.

With `--scenario fairness`, the A/B flood instead: 2 shared worker processes; tenant B
sends `fair` tasks one every 10 ms alone, then tenant A enqueues `flood` tasks at once
and B sends `fair` more the same way; B's start latency both times, and how much of A's
flood was still waiting when B's last task started.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from bench.peers.base import RUNS_ENV, System, read_runs

BULK_CHUNK = 1000
LATENCY_INTERVAL_S = 0.005
DELAY_INTERVAL_S = 0.002
DELAY_S = 2.0
LATENCY_BASE = 1_000_000
DELAYED_BASE = 2_000_000
FLOOD_BASE = 3_000_000
B_BASE = 4_000_000
B_INTERVAL_S = 0.010


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {f"p{p}": pct(values, p) for p in (50, 95, 99)}


def wait_runs(runs_path: Path, ids: range, stall_s: float) -> dict[int, list[float]]:
    """Wait until every id ran, or nothing new ran for `stall_s`."""
    seen, last_change = -1, time.monotonic()
    while True:
        runs = read_runs(runs_path)
        done = sum(1 for i in ids if i in runs)
        if done == len(ids):
            return runs
        if done != seen:
            seen, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            return runs
        time.sleep(0.05)


def paced(system: System, ids: range, interval_s: float, send: Any) -> dict[int, float]:
    """Call `send(i)` once every `interval_s`; the clock just before each call."""
    sent: dict[int, float] = {}
    next_at = time.perf_counter()
    for i in ids:
        next_at += interval_s
        sent[i] = time.time()
        send(i)
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    return sent


def enqueue(system: System, total: int, single: int) -> dict[str, float | None]:
    singles = single if system.has_bulk else total
    start = time.perf_counter()
    for i in range(singles):
        system.enqueue_one(i)
    out: dict[str, float | None] = {
        "single_rate": singles / (time.perf_counter() - start),
        "bulk_rate": None,
    }
    if system.has_bulk:
        start = time.perf_counter()
        for first in range(singles, total, BULK_CHUNK):
            system.enqueue_bulk(list(range(first, min(total, first + BULK_CHUNK))))
        out["bulk_rate"] = (total - singles) / (time.perf_counter() - start)
    return out


def run(system: System, runs_path: Path, sizes: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": system.name, "version": system.version, "config": system.config,
        "workers_config": system.workers_config,
    }  # fmt: skip
    system.setup()
    result.update(enqueue(system, sizes.tasks, sizes.single))
    drained = range(sizes.tasks)
    launched = time.time()
    system.start_workers(2)
    runs = wait_runs(runs_path, drained, sizes.stall)
    starts = sorted(runs[i][0] for i in drained if i in runs)
    if len(starts) > 1:
        result["drain_rate"] = len(starts) / (starts[-1] - starts[0])
        result["drain_wall_s"] = starts[-1] - launched
    expected = list(drained)

    lat_ids = range(LATENCY_BASE, LATENCY_BASE + sizes.latency)
    sent = paced(system, lat_ids, LATENCY_INTERVAL_S, system.enqueue_one)
    runs = wait_runs(runs_path, lat_ids, sizes.stall)
    latency = [(runs[i][0] - sent[i]) * 1000 for i in lat_ids if i in runs]
    result["latency_ms"] = percentiles(latency)
    expected += lat_ids

    if system.has_delay:
        del_ids = range(DELAYED_BASE, DELAYED_BASE + sizes.delayed)
        sent = paced(
            system,
            del_ids,
            DELAY_INTERVAL_S,
            lambda i: system.enqueue_delayed(i, DELAY_S),
        )
        time.sleep(DELAY_S)
        runs = wait_runs(runs_path, del_ids, sizes.stall)
        late = [(runs[i][0] - sent[i] - DELAY_S) * 1000 for i in del_ids if i in runs]
        result["lateness_ms"] = percentiles(late)
        expected += del_ids

    time.sleep(1.0)  # let a late duplicate show itself before the workers stop
    system.stop()
    runs = read_runs(runs_path)
    result["tasks"] = len(expected)
    result["lost"] = sum(1 for i in expected if i not in runs)
    result["duplicated"] = sum(len(runs[i]) - 1 for i in expected if i in runs)
    return result


def fairness(system: System, runs_path: Path, sizes: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": system.name, "version": system.version, "config": system.fairness_config,
        "workers_config": system.workers_config,
    }  # fmt: skip
    system.setup()
    system.setup_tenants(["a", "b"])
    system.start_shared_workers(2)
    warm = range(B_BASE - 10, B_BASE)  # the workers are up and have run something
    for i in warm:
        system.enqueue_as("b", [i])
    wait_runs(runs_path, warm, sizes.stall)

    def b_latency(ids: range) -> list[float]:
        sent = paced(system, ids, B_INTERVAL_S, lambda i: system.enqueue_as("b", [i]))
        runs = wait_runs(runs_path, ids, max(sizes.stall, 600))
        return [(runs[i][0] - sent[i]) * 1000 for i in ids if i in runs]

    alone_ids = range(B_BASE, B_BASE + sizes.fair)
    result["b_alone_ms"] = percentiles(b_latency(alone_ids))
    flood_ids = range(FLOOD_BASE, FLOOD_BASE + sizes.flood)
    for first in range(flood_ids.start, flood_ids.stop, BULK_CHUNK):
        system.enqueue_as("a", list(range(first, min(flood_ids.stop, first + BULK_CHUNK))))
    beside_ids = range(B_BASE + sizes.fair, B_BASE + 2 * sizes.fair)
    result["b_flood_ms"] = percentiles(b_latency(beside_ids))
    runs = wait_runs(runs_path, flood_ids, sizes.stall)
    b_done = max((runs[i][0] for i in beside_ids if i in runs), default=0.0)
    result["flood"] = sizes.flood
    result["flood_left_at_b_done"] = sum(
        1 for i in flood_ids if i not in runs or runs[i][0] > b_done
    )
    time.sleep(1.0)
    system.stop()
    runs = read_runs(runs_path)
    expected = [*warm, *alone_ids, *flood_ids, *beside_ids]
    result["tasks"] = len(expected)
    result["lost"] = sum(1 for i in expected if i not in runs)
    result["duplicated"] = sum(len(runs[i]) - 1 for i in expected if i in runs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("module", help="plug-in module in bench.peers, e.g. celery_")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=5_000, help="single enqueues if bulk")
    parser.add_argument("--latency", type=int, default=2_000)
    parser.add_argument("--delayed", type=int, default=1_000)
    parser.add_argument("--stall", type=float, default=30.0, help="give up after s idle")
    parser.add_argument("--backend", default="", help="for systems with several")
    parser.add_argument("--scenario", default="core", choices=["core", "fairness"])
    parser.add_argument("--flood", type=int, default=10_000, help="fairness: A's tasks")
    parser.add_argument("--fair", type=int, default=100, help="fairness: B's tasks, twice")
    sizes = parser.parse_args()

    def interrupted(signum: int, frame: object) -> None:
        raise SystemExit(f"driver: signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    runs_path = sizes.work / "runs.log"
    os.environ[RUNS_ENV] = str(runs_path)
    plugin = importlib.import_module(f"bench.peers.{sizes.module}").Plugin
    system: System = plugin(sizes.work, sizes.backend) if sizes.backend else plugin(sizes.work)
    system.env[RUNS_ENV] = str(runs_path)
    try:
        scenario = fairness if sizes.scenario == "fairness" else run
        result = scenario(system, runs_path, sizes)
    finally:
        system.stop()
        system.teardown()
    sizes.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
