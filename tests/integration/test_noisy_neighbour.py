"""Noisy neighbour (issue 7 points 4 and 5), on SQLite and PostgreSQL: a server, one
shared worker pool in its own `sluice worker` process (8 slots, 10 ms tasks: at most 800
a second), tenant A flooding submits at ten times the drain rate from its own process,
and tenants B and C each sending one task every 20 ms. A gets 429s naming its scope and
its backlog stops growing; B and C get none, and their submit→start p99 stays within
2x of what it is without A (plus one task's duration: slots are not preempted, and a
busy pool frees one every 10 ms / 8). Overload here is a backlog worth 2 s of draining
(30 s by default) and the heavy-hitter interval 1 s (10 s), so the test takes seconds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from sluice.model import SHARED
from tests.harness import Running, process, running_server, wait_for
from tests.integration.noisy_app import HOLD_S, app

# It compares two phases' latencies, so it needs the machine to itself: beside another
# test on 2 cores, that test's bursts land in one phase and not the other (CI saw the
# quiet tenants' p99 alone at 85 ms instead of 15). `make test` runs it after the rest.
pytestmark = [pytest.mark.alone, pytest.mark.xdist_group("timing")]
POOL_KEY = "pool-secret-for-tests"
# The server, the worker, the flood and PostgreSQL share 2 cores: beyond 2x plus one
# task, this much is allowed for the scheduler's own jitter.
SUITE_NOISE_MS = 20.0
ROOT = Path(__file__).resolve().parents[2]
EVERY_S = 0.02  # B and C: one task every 20 ms each
DRAIN = 8 / HOLD_S  # at most, tasks a second


def rss_bytes() -> int:
    """This process's resident memory (the server runs in it), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(
        tmp_path, app, backend, pool_key=POOL_KEY, overload_s=2.0, overload_min_backlog=200,
        backpressure_interval_s=1.0,
    ) as srv:  # fmt: skip
        await srv.node.functions.register(SHARED, [t.config for t in app.tasks.values()])
        yield srv


def started_at(server: Running, ids: list[str]) -> dict[str, float]:
    """The workers' start time of each task, from the attempt rows."""
    query = "SELECT task_id, started_at FROM attempts WHERE started_at IS NOT NULL AND task_id IN "
    if server.database.startswith("postgresql://"):
        with psycopg.connect(server.database) as pg:
            rows = pg.execute((query + "(SELECT unnest(%s::text[]))").encode(), (ids,)).fetchall()
    else:
        import sqlite3

        path = server.database.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            marks = ",".join("?" * len(ids))
            rows = conn.execute(query + f"({marks})", ids).fetchall()
    return {r[0]: float(r[1]) for r in rows}


# Each quiet task's submit round trip (ms), to say where a slow start's time went.
ACKED_MS: dict[str, float] = {}


async def steady(http: httpx.AsyncClient, key: str, seconds: float, sent: dict[str, float],
                 statuses: list[int]) -> None:  # fmt: skip
    """One task every EVERY_S, like a well-behaved producer."""
    auth = {"authorization": f"Bearer {key}"}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.time()
        answer = await http.post("/v1/tasks", json={"function": "work", "args": ["x"]},
                                 headers=auth)  # fmt: skip
        statuses.append(answer.status_code)
        if answer.status_code == 201:
            sent[answer.json()["id"]] = t0
            ACKED_MS[answer.json()["id"]] = (time.time() - t0) * 1000
        await asyncio.sleep(EVERY_S)


async def test_a_flooding_tenant_is_throttled_and_the_others_are_not(
    server: Running, tmp_path: Path
) -> None:
    node = server.node
    keys = {}
    for name in ("a", "b", "c"):
        tenant = await node.tenants.ensure(name)
        keys[name] = await node.tenants.create_key(tenant.id)
    a_id = (await node.tenants.ensure("a")).id
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLUICE_URL": server.url,
           "SLUICE_API_KEY": POOL_KEY}  # fmt: skip
    # In-thread, not a child process per tenant (a shared pool's default): this measures
    # dispatch. With children the phase without A, which comes first, also measures the
    # tenants' first children starting (its p99 140-230 ms on this machine, against
    # 9-17 ms in-thread); docs/isolation.md gives what isolation costs.
    worker = [sys.executable, "-m", "sluice", "worker", "tests.integration.noisy_app:app",
              "--concurrency", "8", "--isolation", "thread"]  # fmt: skip
    # Memory as the process's resident size, sampled: tracemalloc (which this used) traces
    # every allocation of the in-process server, slowing it most under the flood, so the
    # phase beside A measured the tracer as much as the dispatcher.
    rss = [rss_bytes()]
    with process(worker, env, tmp_path / "worker.log"):
        await wait_for(lambda: len(node.registry) >= 1, timeout=30)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            alone: dict[str, float] = {}
            quiet: list[int] = []
            # As long as the phase beside A: a p99 of 600 starts, not of 300 (the 3rd
            # slowest), so one scheduler hiccup does not set the baseline.
            await asyncio.gather(steady(http, keys["b"], 6.0, alone, quiet),
                                 steady(http, keys["c"], 6.0, alone, quiet))  # fmt: skip
            # A: batches of 80 every 10 ms, about ten times the drain rate.
            flood = [sys.executable, str(ROOT / "tests/integration/noisy_flood.py"),
                     server.url, keys["a"], "80", "0.01"]  # fmt: skip
            backlog: list[tuple[float, int]] = []
            with process(flood, env, tmp_path / "flood.log"):
                # Overload sets in and A's share is worked out: A is refused often.
                policy = node.backpressure.policy
                await wait_for(lambda: policy.refuse.get(a_id, 0.0) > 0.5, timeout=30)
                beside: dict[str, float] = {}
                others: list[int] = []
                producing = asyncio.gather(
                    steady(http, keys["b"], 6.0, beside, others),
                    steady(http, keys["c"], 6.0, beside, others),
                )
                while not producing.done():  # A's backlog, sampled as B and C send
                    backlog.append((time.monotonic(), node.backpressure.backlog))
                    rss.append(rss_bytes())
                    await asyncio.wait({producing}, timeout=0.25)
                await producing
        rss.append(rss_bytes())
        sent = list(alone) + list(beside)
        await wait_for(lambda: len(started_at(server, sent)) == len(sent), timeout=30)
        alone_started = started_at(server, list(alone))
        beside_started = started_at(server, list(beside))
    flood_lines = (tmp_path / "flood.log").read_text().split("\n")

    assert set(quiet) == {201} and set(others) == {201}  # B and C: never refused
    refused = [line for line in flood_lines if line.startswith("429")]
    assert refused, flood_lines[:20]  # A: refused, naming its scope, saying when to come back
    code, scope, retry_after = refused[0].split()[1:]
    assert (code, scope) == ("tenant_throttled", "tenant") and int(retry_after) >= 1
    assert sum(line == "201" for line in flood_lines) >= 5  # ...but it keeps a share
    # A's backlog stops growing once its share holds: over the last 4 s it grows by less
    # than a tenth of what A offered in that time (8,000 a second).
    end = backlog[-1][0]
    late = [n for t, n in backlog if t >= end - 4.0]
    assert len(late) >= 8, backlog
    assert late[-1] - late[0] < 0.1 * 8_000 * 4.0, late
    baseline = [(alone_started[k] - t) * 1000 for k, t in alone.items() if k in alone_started]
    with_a = [(beside_started[k] - t) * 1000 for k, t in beside.items() if k in beside_started]
    assert len(baseline) == len(alone) and len(with_a) >= 0.95 * len(beside)
    p99_alone, p99_with = pct(baseline, 99), pct(with_a, 99)
    print(
        f"noisy neighbour: B/C p99 alone {p99_alone:.1f} ms, beside A {p99_with:.1f} ms; "
        f"A refused {len(refused)} of {len(flood_lines)} batches; backlog {late[0]}->{late[-1]}"
    )
    # On failure: the slowest starts beside A, each as (when, ms after the phase began;
    # the submit's round trip; submit to start), to tell a slow commit from a slow dispatch.
    first = min(beside.values())
    slowest = sorted(beside, key=lambda k: beside_started.get(k, 1e18) - beside[k])[-8:]
    where = [
        (round((beside[k] - first) * 1000), round(ACKED_MS.get(k, -1.0), 1),
         round((beside_started.get(k, 0) - beside[k]) * 1000, 1))
        for k in slowest
    ]  # fmt: skip
    assert p99_with <= 2 * p99_alone + HOLD_S * 1000 + SUITE_NOISE_MS, (p99_alone, p99_with, where)
    assert max(rss) - rss[0] < 200 * 1024 * 1024  # the server's memory stays bounded
