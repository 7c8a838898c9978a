"""Flow-control scenarios of `make bench` (issue 7): AIMD against a real HTTP downstream,
and a noisy neighbour on a shared pool. Each takes a `Rig` from bench/run.py."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

import sluice

if TYPE_CHECKING:
    from bench.run import Rig

ROOT = Path(__file__).resolve().parents[1]
PLOT = ROOT / "bench" / "aimd.svg"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(r: Rig, argv: list[str], name: str) -> subprocess.Popen[bytes]:
    log = open(r.work / f"{name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, env=r.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    r.procs.append(proc)
    return proc


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.05)


def bench_aimd(
    r: Rig, total: int, capacity: int = 20, service_ms: float = 20.0, halve_at_s: float = 20.0
) -> dict[str, float]:
    """20,000 tasks to an endpoint serving `capacity` at once (429 above), halved at
    `halve_at_s`: how fast L finds the capacity, how close it stays, how many 429s."""
    port = _free_port()
    down = f"http://127.0.0.1:{port}"
    _spawn(r, [sys.executable, "-m", "bench.downstream", str(port), str(capacity),
               str(service_ms)], "downstream")  # fmt: skip
    _wait(lambda: httpx.get(f"{down}/stats", timeout=1).status_code == 200, 30, "downstream")
    auth = {"authorization": f"Bearer {r.api_key}"}
    retry = {"max_attempts": 5, "base_s": 0.1, "min_backoff_s": 0.1}
    config = {"target": {"url": f"{down}/work", "timeout_s": 5}, "retry": retry}
    put = httpx.put(f"{r.url}/v1/functions/remote", headers=auth, timeout=10, json=config)
    put.raise_for_status()
    with sluice.Client(r.url, r.api_key) as client:
        for i in range(0, total, 1000):
            client.submit_many([{"function": "remote", "args": [j]} for j in range(i, i + 1000)])
    samples: list[tuple[float, float, int, int]] = []  # (t, L, served, refused)
    start, halved = time.monotonic(), False
    with httpx.Client(timeout=5) as http:
        while True:
            t = time.monotonic() - start
            state = http.get(f"{r.url}/v1/functions/remote", headers=auth).json()["target_state"]
            stats = http.get(f"{down}/stats").json()
            samples.append((t, state["limit"], stats["served"], stats["refused"]))
            if not halved and t >= halve_at_s:
                http.post(f"{down}/capacity", content=str(capacity // 2))
                halved = True
            if stats["served"] >= total or t > 300:
                break
            time.sleep(0.2)
    first = [s for s in samples if s[0] < halve_at_s]
    converged = next((t for t, limit, *_ in first if limit >= 0.8 * capacity), float("nan"))
    steady = [s for s in first if s[0] >= converged + 1]
    later = [s for s in samples if s[0] >= halve_at_s + 8]
    served = steady[-1][2] - steady[0][2] if len(steady) > 1 else 0
    refused = steady[-1][3] - steady[0][3] if len(steady) > 1 else 0
    plot(samples, capacity, halve_at_s)
    return {
        "aimd_converge_s": converged,
        "aimd_mean_limit": sum(s[1] for s in steady) / max(1, len(steady)),
        "aimd_429_share": refused / max(1, served + refused),
        "aimd_mean_limit_halved": sum(s[1] for s in later) / max(1, len(later)),
        "aimd_rate_before": served / max(1e-9, steady[-1][0] - steady[0][0]) if steady else 0,
        "aimd_total_s": samples[-1][0],
    }


def plot(samples: list[tuple[float, float, int, int]], capacity: int, halve_at: float) -> None:
    """bench/aimd.svg: L and the served rate over time, with the capacity, no library."""
    width, height, pad = 760, 300, 45
    end = samples[-1][0] or 1.0
    top_l = max(max(s[1] for s in samples), capacity) * 1.15
    rates = []
    for prev, cur in itertools.pairwise(samples):
        dt = cur[0] - prev[0]
        rates.append((cur[0], (cur[2] - prev[2]) / dt if dt > 0 else 0.0))
    smooth = []  # a 1 s moving average: the raw 0.2 s steps are jagged
    for i, (t, _) in enumerate(rates):
        window = [v for u, v in rates[max(0, i - 4) : i + 1]]
        smooth.append((t, sum(window) / len(window)))
    top_r = max((v for _, v in smooth), default=1.0) * 1.15 or 1.0

    def x(t: float) -> float:
        return pad + (width - 2 * pad) * t / end

    def y(v: float, top: float) -> float:
        return height - pad - (height - 2 * pad) * v / top

    def line(points: list[tuple[float, float]], top: float) -> str:
        return " ".join(f"{x(t):.1f},{y(v, top):.1f}" for t, v in points)

    cap = [(0.0, capacity), (halve_at, capacity), (halve_at, capacity // 2), (end, capacity // 2)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#888"/>',
        f'<polyline fill="none" stroke="#bbb" stroke-dasharray="4 3" points="{line(cap, top_l)}"/>',
        f'<polyline fill="none" stroke="#2a6" stroke-width="1.5" points="{line(smooth, top_r)}"/>',
        f'<polyline fill="none" stroke="#c33" stroke-width="2" '
        f'points="{line([(s[0], s[1]) for s in samples], top_l)}"/>',
        f'<text x="{pad}" y="20" fill="#c33">concurrency limit L (left, max {top_l:.0f})</text>',
        f'<text x="{pad + 260}" y="20" fill="#2a6">tasks served per second (right, max '
        f"{top_r:.0f})</text>",
        f'<text x="{pad + 560}" y="20" fill="#999">capacity (dashed)</text>',
        f'<text x="{width / 2 - 40}" y="{height - 12}">seconds (0 to {end:.0f})</text>',
        "</svg>",
    ]
    PLOT.write_text("\n".join(parts) + "\n")


def bench_noisy(r: Rig, seconds: float = 12.0) -> dict[str, float]:
    """Tenant A floods a shared pool (8 slots, 10 ms tasks) at ten times its drain rate
    from its own process; B and C send one task every 20 ms: their p99 with and without
    A, and how much of A's flood was refused."""
    from bench.run import pct

    # The scenario's shape: 8 slots of 10 ms tasks (800/s at most), in-thread (a shared
    # pool's default child process per attempt would measure process start-up).
    workers = r.workers(concurrency=8, api_key=r.pool_key, isolation="thread")
    _a, a_key = r.tenant("noisy-a")
    keys = [r.tenant(name)[1] for name in ("noisy-b", "noisy-c")]

    refused = 0

    def steady(duration: float) -> list[float]:
        nonlocal refused
        sent: dict[str, float] = {}
        end = time.monotonic() + duration
        with httpx.Client(base_url=r.url, timeout=30) as http:
            while time.monotonic() < end:
                for key in keys:
                    t0 = time.time()
                    answer = http.post("/v1/tasks", json={"function": "hold", "args": [10.0]},
                                       headers={"authorization": f"Bearer {key}"})  # fmt: skip
                    if answer.status_code == 201:
                        sent[answer.json()["id"]] = t0
                    else:
                        refused += 1
                time.sleep(0.02)
        _wait(lambda: r.query("SELECT count(*) FROM attempts WHERE started_at IS NOT NULL "
                              "AND task_id IN ids(?)", list(sent))[0][0] == len(sent),
              60, "B and C's tasks")  # fmt: skip
        rows = r.query("SELECT task_id, started_at FROM attempts WHERE task_id IN ids(?)",
                       list(sent))  # fmt: skip
        return [(started - sent[task_id]) * 1000 for task_id, started in rows]

    alone = steady(seconds / 2)
    flood = _spawn(r, [sys.executable, "-m", "bench.flood", r.url, a_key, "hold", "80", "0.01"],
                   "flood")  # fmt: skip
    time.sleep(seconds / 2)  # overload sets in and A's share is worked out
    beside = steady(seconds)
    flood.terminate()
    flood.wait(timeout=20)
    r.stop_workers(workers)
    lines = (r.work / "flood.log").read_text().split()
    return {
        "noisy_bc_p99_alone": pct(alone, 99),
        "noisy_bc_p99_beside": pct(beside, 99),
        "noisy_a_refused_share": lines.count("429") / max(1, len(lines)),
        "noisy_bc_refused": float(refused),
    }
