"""`make bench-capture`: what log capture costs tasks that do not log, paired (issue 16
point 6: drain and submit→start within 5 % with capture on).

    python -m bench.capture [--rounds 8] [--parts latency,drain] [--backend sqlite|postgres]
                            [--quick] [--alone]

Rounds of whole runs (bench/ab.py) drift more than 5 % on this machine from one to the
next, so here the two arms run at the same moments on one server: two `sluice worker`
commands with the flags `make bench` gives its workers, the same but for
`--no-capture-logs` on one of them, each serving its own copy of a no-op
(bench/apps.py: `noop_left`, `noop_right`). Whatever the machine does, both see it.

- submit → start: one task every 5 ms, to the two functions in turn, to idle workers of
  1 process x 16 slots each (`make bench`'s latency worker); 1,000 a function a round;
  start time as `make bench` takes it (client clock before the request → worker clock at
  handler start, from the attempt rows).
- drain: 10,000 no-op tasks of each function queued interleaved and held by a pause,
  both workers (2 processes x 256 slots each, `make bench`'s drain worker) connected,
  then the pause lifted: both drain side by side. An arm's rate is its tasks over its
  own first dispatch → last finish; "while both ran" counts its finishes only while the
  two were draining (the faster one's tail is not stretched by the other's). Side by
  side, what one worker's extra CPU takes from the server slows both arms alike; the
  difference shows the worker's own cost. `--alone` also drains each side alone in
  ABBA order every round (the whole cost, but drift within a round counts in full).

Each round runs the pair (capture on and off) and the control (capture on and on, so
any difference is position or noise), one after the other; the sides swap in ABBA
order and the side submitted and started first alternates. Printed: each arm's median
over rounds (min-max), the median per-round difference, and the control's beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import sluice
from bench import apps
from bench.run import Rig, machine, pct, rig, wait_until

SIDES = ("left", "right")
ABBA = (False, True, True, False)  # round k swaps the sides if ABBA[k % 4]
# A pairing's capture per arm; arm 1's difference is taken against arm 2.
PAIRINGS = {"pair": (True, False), "control": (True, True)}
Figures = dict[str, float]  # one arm's figures in one round
Results = dict[str, list[tuple[Figures, Figures]]]  # pairing -> rounds of (arm 1, arm 2)
T = TypeVar("T")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def start_workers(
    r: Rig, capture: dict[str, bool], order: tuple[str, str], processes: int, concurrency: int
) -> list[subprocess.Popen[bytes]]:
    """One worker command per side, as `Rig.workers` starts them (isolation thread, the
    default outside shared pools) but serving that side's app."""
    procs = []
    for side in order:
        args = ["--processes", str(processes), "--concurrency", str(concurrency)]
        args += ["--isolation", "thread", *([] if capture[side] else ["--no-capture-logs"])]
        procs.append(r.start("worker", f"bench.apps:{side}", *args))
    wait_until(lambda: r.health().get("workers", 0) >= 2 * processes, 30, "the workers")
    return procs


def stop_workers(r: Rig, procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
    wait_until(lambda: r.health().get("workers", 1) == 0, 30, "workers to leave")


def latency_round(
    r: Rig, capture: dict[str, bool], order: tuple[str, str], count: int
) -> dict[str, list[float]]:
    """Submit→start (ms) per side: `count` tasks each, one every 5 ms in turn."""
    procs = start_workers(r, capture, order, processes=1, concurrency=16)
    client = sluice.Client(r.url, r.api_key)
    sent: dict[str, tuple[str, float]] = {}
    next_at = time.perf_counter()
    for i in range(count):
        for side in order:
            next_at += 0.005
            t0 = time.time()
            sent[client.submit({"function": f"noop_{side}", "args": [i]}).id] = (side, t0)
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    client.close()
    ids = list(sent)
    wait_until(
        lambda: r.query("SELECT count(*) FROM attempts WHERE task_id IN ids(?)", ids)[0][0]
        == len(ids), 60, "latency tasks",
    )  # fmt: skip
    rows = r.query("SELECT task_id, started_at FROM attempts WHERE task_id IN ids(?)", ids)
    stop_workers(r, procs)
    late: dict[str, list[float]] = {side: [] for side in SIDES}
    for task_id, started in rows:
        side, t0 = sent[task_id]
        late[side].append((started - t0) * 1000)
    return late


def queue_held(r: Rig, counts: dict[str, int]) -> tuple[str, float]:
    """Queue `counts` tasks per side, interleaved by 1,000, held by a pause on both
    functions; returns (the pause's id, the time before the first submit)."""
    client = sluice.Client(r.url, r.api_key)
    held = client.pauses.create(function=[f"noop_{side}" for side in SIDES])
    since = time.time()
    for i in range(0, max(counts.values()), 1000):
        for side, count in counts.items():
            calls = range(i, min(count, i + 1000))
            if calls:
                client.submit_many([{"function": f"noop_{side}", "args": [j]} for j in calls])
    client.close()
    return held.id, since


def release_and_wait(r: Rig, pause_id: str) -> None:
    """Lift the pause and wait until nothing is ready or running (partial indexes, so
    the polling costs the machine little while the workers drain)."""
    with sluice.Client(r.url, r.api_key) as client:
        client.pauses.delete(pause_id)
    busy = "SELECT count(*) FROM tasks WHERE state = ?"
    deadline = time.monotonic() + 300
    while r.query(busy, "ready")[0][0] or r.query(busy, "running")[0][0]:
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out waiting for the drain")
        time.sleep(0.05)


def spans(r: Rig, since: float) -> dict[str, list[tuple[float, float]]]:
    """(dispatched, finished) of each side's attempts of tasks created since `since`."""
    rows = r.query(
        "SELECT t.function, a.dispatched_at, a.finished_at FROM attempts a "
        "JOIN tasks t ON t.id = a.task_id WHERE t.created_at >= ?", since
    )  # fmt: skip
    return {side: [(d, f) for fn, d, f in rows if fn == f"noop_{side}"] for side in SIDES}


def own_rate(span: list[tuple[float, float]]) -> float:
    """Tasks over first dispatch → last finish, as `make bench` takes the drain."""
    return len(span) / (max(f for _, f in span) - min(d for d, _ in span))


def drain_round(
    r: Rig, capture: dict[str, bool], order: tuple[str, str], per_side: int, alone: bool
) -> dict[str, Figures]:
    """Both sides drain `per_side` queued tasks each, side by side; with `alone`, then
    each side alone in ABBA order (the other side's worker idle), `per_side` each time."""
    pause_id, since = queue_held(r, {side: per_side for side in order})
    procs = start_workers(r, capture, order, processes=2, concurrency=256)
    release_and_wait(r, pause_id)
    both = spans(r, since)
    begin = max(min(d for d, _ in span) for span in both.values())
    end = min(max(f for _, f in span) for span in both.values())
    out: dict[str, Figures] = {}
    for side, span in both.items():
        assert len(span) == per_side, (side, len(span))
        beside = sum(begin <= f <= end for _, f in span)
        out[side] = {"drain": own_rate(span), "drain_beside": beside / (end - begin)}
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    for side in (*order, *order[::-1]) if alone else ():
        pause_id, since = queue_held(r, {side: per_side})
        release_and_wait(r, pause_id)
        span = spans(r, since)[side]
        assert len(span) == per_side, (side, len(span))
        rates[side].append(own_rate(span))
    stop_workers(r, procs)
    if alone:
        for side in SIDES:
            out[side]["drain_alone"] = statistics.mean(rates[side])
    return out


def capture_by_side(pairing: str, swapped: bool) -> dict[str, bool]:
    arm1, arm2 = PAIRINGS[pairing]
    return {"left": arm2, "right": arm1} if swapped else {"left": arm1, "right": arm2}


def run_rounds(
    rounds: int,
    measure: Callable[[dict[str, bool], tuple[str, str]], dict[str, T]],
    show: Callable[[T], str],
) -> dict[str, list[tuple[T, T]]]:
    """Per pairing, each round's (arm 1, arm 2). Arm 1 is on the left unless the round
    swaps the sides (ABBA); the side started and fed first, and which pairing runs
    first, alternate."""
    results: dict[str, list[tuple[T, T]]] = {pairing: [] for pairing in PAIRINGS}
    for k in range(rounds):
        swapped = ABBA[k % 4]
        order = SIDES if k % 2 == 0 else SIDES[::-1]
        for pairing in list(PAIRINGS)[:: 1 if k % 2 == 0 else -1]:
            sides = measure(capture_by_side(pairing, swapped), order)
            arms = (sides["right"], sides["left"]) if swapped else (sides["left"], sides["right"])
            results[pairing].append(arms)
            where = "right" if swapped else "left"
            print(f"  round {k + 1} {pairing} (arm 1 {where}): arm 1 {show(arms[0])}; "
                  f"arm 2 {show(arms[1])}", flush=True)  # fmt: skip
    return results


def percentiles(late: list[float]) -> Figures:
    return {"p50": pct(late, 50), "p99": pct(late, 99)}


def shown(figures: Figures) -> str:
    return ", ".join(f"{key} {value:,.2f}" for key, value in figures.items())


def spread(values: list[float], unit: str, digits: int) -> str:
    return (
        f"{statistics.median(values):,.{digits}f}{unit} "
        f"({min(values):,.{digits}f} to {max(values):,.{digits}f})"
    )


def table(results: Results, labels: dict[str, tuple[str, int]]) -> list[str]:
    """Rows: figure | capture off | capture on | on vs off | control (on vs on)."""
    lines = []
    for key, (label, digits) in labels.items():
        cells = []
        for pairing in PAIRINGS:
            ones = [a[key] for a, _ in results[pairing]]
            twos = [b[key] for _, b in results[pairing]]
            diffs = [(a[key] / b[key] - 1) * 100 for a, b in results[pairing]]
            cells.append((ones, twos, diffs))
        (on, off, diff), (_, _, control) = cells
        lines.append(
            f"| {label} | {spread(off, '', digits)} | {spread(on, '', digits)} | "
            f"{spread(diff, ' %', 1)} | {spread(control, ' %', 1)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--port", type=int, default=8433)
    parser.add_argument("--rounds", type=int, default=8, help="rounds of each part")
    parser.add_argument("--quick", action="store_true", help="a fifth of the tasks")
    parser.add_argument("--parts", default="latency,drain", help="of latency, drain")
    parser.add_argument(
        "--alone", action="store_true", help="also drain each side alone, ABBA, every round"
    )
    options = parser.parse_args()
    parts = options.parts.split(",")
    scale = 0.2 if options.quick else 1.0
    per_latency, per_drain = int(1000 * scale), int(10_000 * scale)
    os.environ.pop("SLUICE_CAPTURE_LOGS", None)  # the arms' flags alone decide
    began = time.time()
    print(f"machine: {machine()}; load average before {loadavg()}", flush=True)
    rows = []
    with rig(options.port, options.backend) as r:
        for each in (apps.left, apps.right):
            each.configure(url=r.url, api_key=r.api_key)
            each.register()
        if "drain" in parts:
            print(f"drain, {per_drain:,} tasks a side each time", flush=True)
            drain = run_rounds(
                options.rounds,
                lambda capture, order: drain_round(r, capture, order, per_drain, options.alone),
                shown,
            )
            rows += drain_rows(drain, options.alone)
        if "latency" in parts:
            print(f"submit → start, {per_latency:,} tasks a side a round", flush=True)
            late = run_rounds(
                options.rounds,
                lambda capture, order: latency_round(r, capture, order, per_latency),
                lambda samples: shown(percentiles(samples)),
            )
            rows += latency_rows(late)
    print(f"load average after {loadavg()}; {time.time() - began:.0f} s")
    print(
        f"\n{options.backend}, {options.rounds} rounds: median over rounds (min to max) of "
        "each arm's figure and of the per-round difference; the control runs capture on in "
        "both arms (arm 1 against arm 2)\n"
    )
    print("| figure | capture off | capture on (default) | on vs off | control: on vs on |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))


def drain_rows(drain: Results, alone: bool) -> list[str]:
    labels = {
        "drain": ("drain side by side (tasks/s)", 0),
        "drain_beside": ("drain side by side, while both ran", 0),
    }
    if alone:
        labels["drain_alone"] = ("drain alone, ABBA (tasks/s)", 0)
    return table(drain, labels)


def latency_rows(late: dict[str, list[tuple[list[float], list[float]]]]) -> list[str]:
    """Each round's p50 and p99, then each arm's samples of all rounds pooled."""
    per_round = {
        pairing: [(percentiles(a), percentiles(b)) for a, b in rounds]
        for pairing, rounds in late.items()
    }
    labels = {"p50": ("submit→start p50 (ms)", 2), "p99": ("submit→start p99 (ms)", 2)}
    rows = table(per_round, labels)
    for p in (50, 99):
        (on, off), (c1, c2) = (
            (pct([v for a, _ in rounds for v in a], p), pct([v for _, b in rounds for v in b], p))
            for rounds in late.values()
        )
        count = sum(len(a) for a, _ in late["pair"])
        rows.append(
            f"| submit→start p{p}, all {count:,} of an arm pooled (ms) | {off:.2f} | "
            f"{on:.2f} | {(on / off - 1) * 100:+.1f} % | {(c1 / c2 - 1) * 100:+.1f} % |"
        )
    return rows


if __name__ == "__main__":
    main()
