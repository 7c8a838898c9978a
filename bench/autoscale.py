"""`make bench-autoscale`: a burst of 10,000 tasks of 0.5 s on an idle, autoscaled pool
(issue 18, point 3).

A real `sluice server` (SQLite or PostgreSQL) and one `sluice worker bench.apps:app
--autoscale 0:MAX` supervisor with no worker process. The burst is submitted in batches
of 1,000; every SAMPLE_S the bench counts the supervisor's live children (from /proc)
and reads the load (`GET /v1/scaling/default`). Reported: time from the first submit to
the first child process and to the first task started, the peak process count, when
every task had ended, when the pool was back to MIN; no task may have more than one
attempt (none was cut by a scale-down). The process count over time is drawn in a PNG
(bench/autoscale.png, a tiny pure-Python writer: no plotting dependency) and listed in
bench/autoscale.csv.
"""

from __future__ import annotations

import argparse
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import httpx

from bench.run import Rig, rig

HERE = Path(__file__).resolve().parent
SAMPLE_S = 0.1


def children(pid: int) -> int:
    try:
        return len(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    except OSError:
        return 0


def load(r: Rig) -> int:
    try:
        answer = httpx.get(f"{r.url}/v1/scaling/default", timeout=2,
                           headers={"authorization": f"Bearer {r.api_key}"})  # fmt: skip
        return int(answer.json()["load"])
    except (httpx.HTTPError, KeyError, ValueError):
        return -1


def run(
    port: int, backend: str, total: int, maximum: int, concurrency: int, down_s: float
) -> dict[str, object]:
    with rig(port, backend, env={"SLUICE_SCALE_DOWN_AFTER_S": str(down_s)}) as r:
        supervisor = r.start(
            "worker", "bench.apps:app", "--autoscale", f"0:{maximum}",
            "--concurrency", str(concurrency),
        )  # fmt: skip
        httpx.put(f"{r.url}/v1/functions/nap", json={}, timeout=5,
                  headers={"authorization": f"Bearer {r.api_key}"}).raise_for_status()  # fmt: skip
        time.sleep(1.0)  # the supervisor's first polls: it must start nothing yet
        assert children(supervisor.pid) == 0, "the idle pool started a process"
        samples: list[tuple[float, int, int]] = []
        t0 = time.time()
        marks: dict[str, float] = {}

        def sample() -> None:  # from the first submit on, beside the submitting thread
            while "back" not in marks and time.time() - t0 < 600:
                n, now_load = children(supervisor.pid), load(r)
                samples.append((time.time() - t0, n, now_load))
                if "submitted" in marks and "ended" not in marks and r.count("succeeded") == total:
                    marks["ended"] = time.time() - t0
                if "ended" in marks and n == 0:
                    marks["back"] = time.time() - t0
                time.sleep(SAMPLE_S)

        sampler = threading.Thread(target=sample)
        sampler.start()
        headers = {"authorization": f"Bearer {r.api_key}"}
        with httpx.Client(base_url=r.url, headers=headers, timeout=30) as http:
            for start in range(0, total, 1000):
                batch = [{"function": "nap", "args": [0.5]}] * min(1000, total - start)
                http.post("/v1/tasks/batch", json={"tasks": batch}).raise_for_status()
        marks["submitted"] = submitted_s = time.time() - t0
        sampler.join()
        ended_s, back_s = marks.get("ended"), marks.get("back")
        first_process = next((t for t, n, _ in samples if n > 0), None)
        started = r.query("SELECT min(started_at) FROM attempts")[0][0]
        most = r.query("SELECT max(attempt), count(*) FROM attempts")[0]
    return {
        "submitted_s": submitted_s, "first_process_s": first_process,
        "first_start_s": (started - t0) if started else None,
        "peak_processes": max(n for _, n, _ in samples), "ended_s": ended_s,
        "back_to_zero_s": back_s, "max_attempt": most[0], "attempts": most[1],
        "samples": samples,
    }  # fmt: skip


# -- a tiny PNG writer: a line chart of the process count (and the load) over time ------


def png(
    path: Path, samples: list[tuple[float, int, int]], maximum: int, starts: Sequence[float] = ()
) -> None:
    """Processes (blue) and load (orange) over time; a green vertical line at each time in
    `starts` (the first process running, then the first task started)."""
    width, height, pad = 800, 300, 20
    pixels = [[(255, 255, 255)] * width for _ in range(height)]
    t_end = max(t for t, _, _ in samples) or 1.0
    top_load = max(max(lo for _, _, lo in samples), 1)

    def xy(t: float, v: float, top: float) -> tuple[int, int]:
        x = pad + int((width - 2 * pad) * t / t_end)
        y = height - pad - int((height - 2 * pad) * v / top)
        return x, y

    def line(a: tuple[int, int], b: tuple[int, int], color: tuple[int, int, int]) -> None:
        steps = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
        for i in range(steps + 1):
            x = a[0] + (b[0] - a[0]) * i // steps
            y = a[1] + (b[1] - a[1]) * i // steps
            for dy in (0, 1):
                if 0 <= x < width and 0 <= y + dy < height:
                    pixels[y + dy][x] = color

    grey = (200, 200, 200)
    line((pad, height - pad), (width - pad, height - pad), (0, 0, 0))  # time axis
    line((pad, pad), (pad, height - pad), (0, 0, 0))
    for n in range(1, maximum + 1):  # a grid line per process
        y = xy(0, n, maximum)[1]
        line((pad, y), (width - pad, y), grey)
    for second in range(0, int(t_end) + 1, 5):  # a tick every 5 s
        x = xy(second, 0, 1)[0]
        line((x, height - pad), (x, height - pad + 6), (0, 0, 0))
    for at in starts:  # the marks: green, full height
        x = xy(at, 0, 1)[0]
        line((x, pad), (x, height - pad), (40, 170, 60))
    for (t1, _, l1), (t2, _, l2) in pairwise(samples):  # load: orange
        line(xy(t1, max(l1, 0), top_load), xy(t2, max(l2, 0), top_load), (240, 150, 40))
    for (t1, n1, _), (t2, n2, _) in pairwise(samples):  # processes: blue
        line(xy(t1, n1, maximum), xy(t2, n1, maximum), (30, 80, 220))
        line(xy(t2, n1, maximum), xy(t2, n2, maximum), (30, 80, 220))
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--max", type=int, default=8, help="most worker processes")
    parser.add_argument("--concurrency", type=int, default=50, help="slots per process")
    parser.add_argument("--down-after", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=8432)
    args = parser.parse_args()
    out = run(args.port, args.backend, args.tasks, args.max, args.concurrency, args.down_after)
    samples = out.pop("samples")
    assert isinstance(samples, list)
    marks = [out[k] for k in ("first_process_s", "first_start_s") if out.get(k) is not None]
    png(HERE / "autoscale.png", samples, args.max, [float(m) for m in marks])  # type: ignore[arg-type]
    lines = ["seconds,processes,load"] + [f"{t:.2f},{n},{lo}" for t, n, lo in samples]
    (HERE / "autoscale.csv").write_text("\n".join(lines) + "\n")
    for key, value in out.items():
        print(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}")
    print(
        f"command: python -m bench.autoscale --backend {args.backend} --tasks {args.tasks} "
        f"--max {args.max} --concurrency {args.concurrency} --down-after {args.down_after}"
    )


if __name__ == "__main__":
    main()
