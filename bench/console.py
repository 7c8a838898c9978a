"""`make bench-console`: the web console with a million tasks in the store, and twenty
open consoles beside the hot path (issue 17 point 6).

    python -m bench.console [--backend sqlite|postgres] [--tasks 1000000] [--requests 40]

1. Pages. A `sluice server` with the defaults; 1,000,000 tasks submitted through the SDK
   in batches of 1,000 (no worker, so they stay ready), then, written straight into the
   store as set-up, 600,000 of them marked succeeded and 2,000 dead. A signed-in console
   session then asks each page `--requests` times one after the other (a viewer's
   clicks and its live refreshes) and the p50 / p95 / max of each are printed, with the
   bound of 300 ms at p95.
2. Viewers. `make bench`'s drain (20,000 no-op tasks, 2 worker processes x 256 slots) and
   submit→start latency (2,000 tasks one every 5 ms) with no console open, then with 20
   consoles open on the overview, each refreshing it and the workers page every 2 s as a
   browser's live parts do; twice each, alternating.

Nothing else should run on the machine meanwhile. The figures go to bench/RESULTS.md by
hand, with the machine, the date and this command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg

from bench import apps
from bench.run import Rig, bench_drain, bench_latency, pct, rig

ADMIN_KEY = "sa_bench-console-admin"
BOUND_MS = 300.0
LIVE = {"hx-request": "true"}  # what htmx sends: the live fragment, not the whole page


def execute(r: Rig, sql: str) -> None:
    """Set-up writes straight into the store (not measured)."""
    if r.postgres:
        with psycopg.connect(r.database, autocommit=True) as pg:  # VACUUM needs it
            pg.execute(sql.encode())
        return
    with contextlib.closing(sqlite3.connect(r.database.removeprefix("sqlite:///"))) as conn:
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute(sql)
        conn.commit()


def fill(r: Rig, total: int) -> None:
    apps.noop.app.configure(url=r.url, api_key=r.api_key)
    apps.noop.app.register()

    async def submit() -> None:
        for i in range(0, total, 10_000):
            await apps.noop.asubmit_many([(j,) for j in range(i, min(total, i + 10_000))])
            if i % 100_000 == 0:
                print(f"  submitted {i:,}", flush=True)
        await apps.noop.app.aclient.aclose()

    asyncio.run(submit())
    now = time.time()
    finished = int(total * 0.6)
    oldest = f"SELECT id FROM tasks WHERE state = 'ready' ORDER BY id LIMIT {finished}"
    execute(r, f"UPDATE tasks SET state = 'succeeded', finished_at = {now} WHERE id IN ({oldest})")
    execute(r, "UPDATE tasks SET state = 'dead', finished_at = "
               f"{now}, error = 'ValueError: card declined' WHERE id IN (SELECT id FROM tasks "
               "WHERE state = 'ready' ORDER BY id DESC LIMIT 2000)")  # fmt: skip
    if r.postgres:
        execute(r, "VACUUM ANALYZE tasks")
    else:
        execute(r, "ANALYZE")


def signed_in(r: Rig, key: str) -> httpx.Client:
    client = httpx.Client(base_url=r.url, timeout=30)
    answer = client.post("/ui/signin", data={"key": key, "next": "/"})
    assert answer.status_code == 303, answer.text
    return client


def time_pages(r: Rig, requests: int) -> list[tuple[str, float, float, float]]:
    client = signed_in(r, r.api_key)
    some = r.query("SELECT id FROM tasks WHERE state = 'dead' LIMIT 1")[0][0]
    page = client.get("/ui/tasks").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    pages: list[tuple[str, Any]] = [
        ("overview (live refresh)", lambda: client.get("/ui/overview", headers=LIVE)),
        ("overview (full page)", lambda: client.get("/")),
        ("tasks, newest first", lambda: client.get("/ui/tasks")),
        ("tasks: function + ready", lambda: client.get("/ui/tasks?function=noop&state=ready")),
        ("tasks: dead", lambda: client.get("/ui/tasks?state=dead")),
        ("bulk count (cancel ready)", lambda: client.post(
            "/ui/tasks/count", data={"csrf": csrf[1], "verb": "cancel", "state": "ready"})),
        ("task detail", lambda: client.get(f"/ui/tasks/{some}")),
        ("task logs", lambda: client.get(f"/ui/tasks/{some}/logs")),
        ("dead letters (2,000 grouped)", lambda: client.get("/ui/dead")),
        ("functions", lambda: client.get("/ui/functions")),
        ("workers", lambda: client.get("/ui/workers")),
        ("schedules", lambda: client.get("/ui/schedules")),
        ("pauses", lambda: client.get("/ui/pauses")),
        ("events", lambda: client.get("/ui/events")),
    ]  # fmt: skip
    admin = signed_in(r, ADMIN_KEY)
    pages.append(("tenants (admin)", lambda: admin.get("/ui/tenants")))
    out = []
    for name, ask in pages:
        assert ask().status_code == 200, name  # warm
        times = []
        for _ in range(requests):
            start = time.perf_counter()
            answer = ask()
            times.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 200, (name, answer.status_code, answer.text[:300])
        out.append((name, statistics.median(times), pct(times, 95), max(times)))
        print(f"  {name}: p50 {out[-1][1]:.1f} ms, p95 {out[-1][2]:.1f} ms", flush=True)
    client.close()
    admin.close()
    return out


@contextlib.contextmanager
def viewers(r: Rig, count: int) -> Iterator[list[int]]:
    """`count` signed-in consoles refreshing the overview and workers every 2 s."""
    stop = threading.Event()
    served = [0]

    def view() -> None:
        client = signed_in(r, r.api_key)
        try:
            while not stop.is_set():
                for path in ("/ui/overview", "/ui/workers"):
                    assert client.get(path, headers=LIVE).status_code == 200, path
                    served[0] += 1
                stop.wait(2.0)
        finally:
            client.close()

    threads = [threading.Thread(target=view, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    try:
        yield served
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--port", type=int, default=8433)
    parser.add_argument("--parts", default="pages,viewers")
    options = parser.parse_args()
    env = {"SLUICE_ADMIN_KEY": ADMIN_KEY}
    if "pages" in options.parts:
        with rig(options.port, options.backend, env) as r:
            print(f"{options.backend}: filling {options.tasks:,} tasks", flush=True)
            started = time.monotonic()
            fill(r, options.tasks)
            print(f"  filled in {time.monotonic() - started:.0f} s", flush=True)
            rows = time_pages(r, options.requests)
        print(f"\n{options.backend}, {options.tasks:,} tasks, {options.requests} requests a page\n")
        print("| page | p50 (ms) | p95 (ms) | max (ms) | p95 ≤ 300 ms |")
        print("| --- | ---: | ---: | ---: | --- |")
        for name, p50, p95, most in rows:
            ok = "yes" if p95 <= BOUND_MS else "**no**"
            print(f"| {name} | {p50:.1f} | {p95:.1f} | {most:.1f} | {ok} |")
    if "viewers" in options.parts:
        results: dict[str, list[tuple[float, float, float]]] = {"none": [], "20 consoles": []}
        for _ in range(2):
            for label in ("none", "20 consoles"):
                with rig(options.port, options.backend, env) as r:
                    count = 20 if label != "none" else 0
                    with viewers(r, count) as served:
                        drain = bench_drain(r, 20_000, processes=2, concurrency=256)[0]
                        lat = bench_latency(r, 2_000, 0.005)
                    assert served[0] >= count, "the consoles asked nothing: see above"
                    results[label].append((drain, pct(lat, 50), pct(lat, 99)))
                    shown = f"p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms"
                    print(f"  {label}: drain {drain:,.0f}/s, {shown}; console requests {served[0]}")
        print(f"\n{options.backend}, medians of 2 runs each\n")
        print("| consoles open | drain (tasks/s) | submit→start p50 (ms) | p99 (ms) |")
        print("| --- | ---: | ---: | ---: |")
        for label, runs in results.items():
            d, p50, p99 = (statistics.median(x[i] for x in runs) for i in range(3))
            print(f"| {label} | {d:,.0f} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
