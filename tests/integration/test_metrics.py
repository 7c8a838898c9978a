"""Metrics and a tenant's stats (issue: observability, point A), end to end on SQLite and
PostgreSQL: a known workload runs on a real server with a real worker (tasks that
succeed, tasks that die, a delayed one, a paused one, a deduplicated one, a submit a
quota refuses, and another tenant's tasks that no worker serves); `/metrics`, scraped
over HTTP and parsed with prometheus-client's parser, carries the exact counts; each
tenant's `GET /v1/stats` shows its own figures and nothing of the other's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import sluice
from tests.harness import Running, running_server, running_worker, wait_for

app = sluice.App("metrics-shop")
ADMIN = "admin-key-for-metrics"
N_OK, N_DEAD, N_OTHER = 5, 2, 3


@app.task
async def ok(i: int) -> int:
    return i


@app.task
async def boom(i: int) -> None:
    raise sluice.Reject(f"no {i}")  # not retryable: straight to dead


@app.task
async def later(i: int) -> int:
    return i


@app.task
async def held(i: int) -> int:
    return i


gates: dict[str, asyncio.Event] = {}  # one per test: an Event belongs to one loop


@app.task
async def hold(i: int) -> int:
    await gates["hold"].wait()
    return i


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend, admin_key=ADMIN) as running:
        yield running


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def submit(http: httpx.AsyncClient, function: str, i: int, **extra: Any) -> httpx.Response:
    return await http.post("/v1/tasks", json={"function": function, "args": [i], **extra})


async def run_workload(server: Running, http: httpx.AsyncClient, other: httpx.AsyncClient) -> None:
    made = await http.post("/v1/pauses", json={"selector": {"function": ["held"]}})
    assert made.status_code == 201, made.text
    async with running_worker(server, app, concurrency=4):
        for i in range(N_OK):
            assert (await submit(http, "ok", i)).status_code == 201
        for i in range(N_DEAD):
            assert (await submit(http, "boom", i)).status_code == 201
        assert (await submit(http, "later", 0, delay=3600)).status_code == 201
        assert (await submit(http, "held", 0)).status_code == 201
        first = await submit(http, "ok", 99, key="once")
        again = await submit(http, "ok", 99, key="once")
        assert (first.status_code, again.status_code) == (201, 200)
        for i in range(N_OTHER):
            assert (await submit(other, "ok", i)).status_code == 201
        await wait_for(
            lambda: (
                server.count("state = 'succeeded'") == N_OK + 1
                and server.count("state = 'dead'") == N_DEAD
            )
        )
        # Two tasks wait (later, held): a quota of two refuses the next submit.
        quota = await http.put(f"/v1/tenants/{server.tenant_id}/quota", json={"max_queued": 2},
                               headers=auth(ADMIN))  # fmt: skip
        assert quota.status_code == 200, quota.text
        assert (await submit(http, "ok", 100)).status_code == 429
        # The timers' jobs, now rather than on their beat: the leader's snapshot and
        # this node's rollup.
        await server.node.snapshot.take_once()
        await server.node.meters.flush()
        scraped = await http.get("/metrics", headers=auth(ADMIN))
    assert scraped.status_code == 200, scraped.text
    server.scraped = scrape(scraped.text)  # type: ignore[attr-defined]


async def test_metrics_carry_the_exact_counts_of_a_known_workload(server: Running) -> None:
    other_tenant = await server.node.tenants.ensure("metrics-other")
    other_key = await server.node.tenants.create_key(other_tenant.id)
    await server.node.functions.register(other_tenant.id, [ok.config])
    async with (
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
        httpx.AsyncClient(base_url=server.url, headers=auth(other_key)) as other,
    ):
        await run_workload(server, http, other)
        s: dict[Any, float] = server.scraped  # type: ignore[attr-defined]
        me, them = server.tenant_id, other_tenant.id

        submitted = "sluice_tasks_submitted_total"
        assert value(s, submitted, tenant=me, outcome="accepted") == N_OK + N_DEAD + 3
        assert value(s, submitted, tenant=me, outcome="deduplicated") == 1
        assert value(s, submitted, tenant=me, outcome="rejected_quota") == 1
        assert value(s, submitted, tenant=them, outcome="accepted") == N_OTHER
        assert value(s, "sluice_tasks_started_total", function="ok") == N_OK + 1
        assert value(s, "sluice_tasks_started_total", function="boom") == N_DEAD
        finished = "sluice_tasks_finished_total"
        assert value(s, finished, function="ok", outcome="succeeded") == N_OK + 1
        assert value(s, finished, function="boom", outcome="dead") == N_DEAD
        assert value(s, "sluice_task_wait_seconds_count") == N_OK + 1 + N_DEAD
        assert value(s, "sluice_task_run_seconds_count") == N_OK + 1 + N_DEAD
        assert value(s, "sluice_task_wait_seconds_bucket", le="+Inf") == N_OK + 1 + N_DEAD
        assert value(s, "sluice_dispatch_round_seconds_count") >= 1  # type: ignore[operator]
        for op in ("submit", "claim", "finish"):
            assert value(s, "sluice_store_operation_seconds_count", op=op) >= 1  # type: ignore[operator]
        assert value(s, "sluice_backpressure_refusals_total", scope="tenant") == 0
        assert value(s, "sluice_lease_expirations_total") == 0
        # Scraped while the worker (4 slots, all done) was connected.
        assert value(s, "sluice_workers", pool=me, state="ready") == 1
        assert value(s, "sluice_workers", pool=me, state="draining") == 0
        assert value(s, "sluice_worker_slots", pool=me, state="free") == 4
        assert value(s, "sluice_worker_slots", pool=me, state="busy") == 0

        waiting = "sluice_tasks_waiting"
        assert value(s, waiting, function="later", state="scheduled") == 1
        assert value(s, waiting, function="held", state="paused") == 1
        assert value(s, waiting, function="ok", state="ready") == N_OTHER  # no worker for them
        assert value(s, "sluice_dead_letter_tasks", function="boom") == N_DEAD
        assert value(s, "sluice_tasks_held", function="held", reason="paused") == 1
        tenant_waiting = "sluice_tenant_tasks_waiting"
        assert value(s, tenant_waiting, tenant=me, state="scheduled") == 1
        assert value(s, tenant_waiting, tenant=me, state="paused") == 1
        assert value(s, tenant_waiting, tenant=them, state="ready") == N_OTHER
        assert value(s, tenant_waiting, tenant=me, state="ready") is None
        assert value(s, "sluice_oldest_ready_age_seconds", function="ok") is not None
        assert value(s, "sluice_snapshot_age_seconds") is not None

        mine = (await http.get("/v1/stats")).json()
        theirs = (await other.get("/v1/stats", params={"minutes": 5})).json()

    assert mine["tenant_id"] == me
    assert mine["totals"]["submitted"] == N_OK + N_DEAD + 3
    assert mine["totals"]["succeeded"] == N_OK + 1
    assert mine["totals"]["dead"] == N_DEAD
    assert mine["totals"]["started"] == N_OK + 1 + N_DEAD
    assert mine["totals"]["wait_s"] >= 0
    by_function = {f["function"]: f for f in mine["functions"]}
    assert set(by_function) == {"ok", "boom", "later", "held"}
    assert by_function["later"]["tasks"] == {"scheduled": 1}
    assert by_function["held"]["tasks"] == {"paused": 1}
    assert by_function["boom"]["tasks"] == {"dead": N_DEAD}
    assert by_function["ok"]["tasks"] == {}  # the other tenant's ready ones are not here
    assert theirs["tenant_id"] == them
    assert theirs["totals"]["submitted"] == N_OTHER
    assert theirs["totals"]["started"] == 0
    assert [f["function"] for f in theirs["functions"]] == ["ok"]
    assert theirs["functions"][0]["tasks"] == {"ready": N_OTHER}
    assert {m["function"] for m in theirs["minutes"]} == {"ok"}


async def test_stats_and_metrics_need_the_right_key(server: Running) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/v1/stats")).status_code == 401
        tenant_metrics = await http.get("/metrics", headers=auth(server.api_key))
        assert tenant_metrics.status_code == 404  # admin only: function names are everyone's
        bad = await http.get("/v1/stats", params={"minutes": 0}, headers=auth(server.api_key))
        assert bad.status_code == 400


async def test_a_draining_worker_is_counted_as_draining_until_it_leaves(server: Running) -> None:
    """A rolling deploy, seen from /metrics: the old worker, asked to stop while a task
    runs, is `draining` until that task ends, then gone."""
    gate = gates["hold"] = asyncio.Event()
    async with httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http:

        async def workers() -> tuple[float | None, float | None]:
            answer = await http.get("/metrics", headers=auth(ADMIN))
            s = scrape(answer.text)
            pool = server.tenant_id
            return (value(s, "sluice_workers", pool=pool, state="ready"),
                    value(s, "sluice_workers", pool=pool, state="draining"))  # fmt: skip

        async with running_worker(server, app, concurrency=2) as worker:
            assert (await submit(http, "hold", 1)).status_code == 201
            await wait_for(lambda: server.count("state = 'running'") == 1)
            assert await workers() == (1, 0)
            drained = asyncio.create_task(worker.drain())

            async def draining() -> bool:
                return await workers() == (0, 1)

            await wait_for(draining)
            gate.set()  # its task ends: the worker stops
            await asyncio.wait_for(drained, timeout=30)

            async def gone() -> bool:
                return await workers() == (None, None)  # a pool with no worker: no series

            await wait_for(gone)
        assert server.count("state = 'succeeded'") == 1


async def test_workers_and_slots_are_counted_by_pool(tmp_path: Path, backend: str) -> None:
    """A shared pool's worker and a tenant's own, side by side: each under its pool, as
    `GET /v1/scaling/{pool}` names them (`shared`, or the tenant's id), with its slots."""
    gate = gates["hold"] = asyncio.Event()
    pool_key = "pool-key-for-metrics"
    async with (
        running_server(tmp_path, app, backend, admin_key=ADMIN, pool_key=pool_key) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
        running_worker(server, app, concurrency=3),
        running_worker(server, app, concurrency=2, api_key=pool_key),
    ):
        me = server.tenant_id
        assert (await submit(http, "hold", 1)).status_code == 201
        got: dict[str, float | None] = {}

        async def one_running() -> bool:
            s = scrape((await http.get("/metrics", headers=auth(ADMIN))).text)
            got.clear()
            for pool in (me, "shared"):
                for name, states in (("workers", ("ready", "draining")),
                                     ("worker_slots", ("busy", "free"))):  # fmt: skip
                    for state in states:
                        key = f"{pool}/{name}/{state}"
                        got[key] = value(s, f"sluice_{name}", pool=pool, state=state)
            return (got[f"{me}/worker_slots/busy"] or 0) + (
                got["shared/worker_slots/busy"] or 0
            ) == 1

        await wait_for(one_running)
        gate.set()
    assert got[f"{me}/workers/ready"] == 1 and got["shared/workers/ready"] == 1
    assert got[f"{me}/workers/draining"] == 0 and got["shared/workers/draining"] == 0
    # The task runs on one of the two (the tenant's own, or the shared pool's).
    mine = (got[f"{me}/worker_slots/busy"] or 0) + (got[f"{me}/worker_slots/free"] or 0)
    shared = (got["shared/worker_slots/busy"] or 0) + (got["shared/worker_slots/free"] or 0)
    assert (mine, shared) == (3, 2)


def test_past_twenty_pools_the_rest_are_counted_as_other() -> None:
    """The `pool` label's cardinality is bounded: the 20 pools with the most workers are
    named (ties by name), the others add up under `_other`."""
    from types import SimpleNamespace

    from sluice.api.meters import MetersCollector
    from sluice.model import SHARED

    def conn(tenant: str, n: int) -> SimpleNamespace:
        return SimpleNamespace(closed=False, worker_id=f"w-{tenant}-{n}", tenant_id=tenant,
                               draining=n == 1, inflight={"t": None}, slots=4)  # fmt: skip

    registry = [conn(SHARED, n) for n in range(3)]  # the biggest pool
    registry += [conn(f"t{i:02d}", n) for i in range(22) for n in range(2 if i < 19 else 1)]
    collector = MetersCollector(SimpleNamespace(registry=registry))  # type: ignore[arg-type]
    families = {f.name: f for f in collector._workers()}
    got = {
        (f.name, s.labels["pool"], s.labels["state"]): s.value
        for f in families.values() for s in f.samples
    }  # fmt: skip
    pools = {pool for _, pool, _ in got}
    # shared (3), t00-t18 (2 each) are the top 20; t19, t20, t21 (1 each) are _other.
    assert pools == {"shared", "_other", *(f"t{i:02d}" for i in range(19))}
    assert got[("sluice_workers", "shared", "ready")] == 2
    assert got[("sluice_workers", "shared", "draining")] == 1
    assert got[("sluice_workers", "t05", "ready")] == 1
    assert got[("sluice_workers", "_other", "ready")] == 3
    assert got[("sluice_worker_slots", "_other", "busy")] == 3
    assert got[("sluice_worker_slots", "_other", "free")] == 9
    assert sum(v for (name, _, _), v in got.items() if name == "sluice_workers") == len(registry)
