"""Tasks from milliseconds to hours (issue 18 point 6), with real `sluice server` and
`sluice worker` processes on SQLite and on PostgreSQL: a task meant to run for 30 minutes
(1,800 steps; time compressed to 10 ms a step) with a 2 s lease and 0.5 s heartbeats
reports its progress at every step and runs through a server restart (SIGTERM, and on
PostgreSQL a SIGKILL too) and a worker redeploy. It runs once, on its first worker, to
its end; the API shows its progress growing to the total; new tasks go to the new worker.

The handler waits at a few steps for the test (`workload.marathon`'s gates), so that each
restart and the redeploy happen while it runs however slow the machine is: it still runs,
holding its lease, while it waits."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import pytest

import sluice
from sluice.contract import Task
from tests import pg
from tests.acceptance.test_processes import Cluster
from tests.harness import wait_for_sync

pytestmark = pytest.mark.acceptance
STEPS = 1800  # "30 minutes" of one-second steps
STEP_S = 0.01
RESTART, KILL, REDEPLOY = 450, 900, 1350  # the steps at which the handler waits for the test


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_long_task_reports_progress_through_a_server_restart_and_a_worker_redeploy(
    tmp_path: Path, backend: str
) -> None:
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(pg.fresh_database_sync()) if backend == "postgres" else None
        cluster = Cluster(tmp_path, database)
        stack.callback(cluster.stop)
        assert cluster.env["SLUICE_LEASE_S"] == "2" and cluster.env["SLUICE_HEARTBEAT_S"] == "0.5"
        server = cluster.server()
        old = cluster.worker(concurrency=2)
        client = stack.enter_context(sluice.Client(cluster.url, cluster.api_key))
        long = client.submit(
            {"function": "marathon", "args": ["long", STEPS, STEP_S, [RESTART, KILL, REDEPLOY]]}
        )
        seen: list[float] = []  # the progress read through the API, in order

        def reached(step: int) -> bool:
            progress = client.tasks.get(long.id).progress
            if progress is not None:
                seen.append(progress.done)
            return progress is not None and progress.done >= step

        def open_gate(step: int) -> None:
            (cluster.markers / f"long.gate{step}").touch()

        def back(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
            """A server started again on the same database, once the worker is back on it
            (it reconnects, and renews its lease at once)."""
            restarted = cluster.server()
            wait_for_sync(lambda: cluster.health()["workers"] == 1, timeout=20)
            return restarted

        # (a) The server restarts under the running task: SIGTERM (an upgrade) ...
        wait_for_sync(lambda: reached(RESTART - 1), timeout=30)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        restarted_at = time.time()
        server = back(server)
        open_gate(RESTART)
        wait_for_sync(lambda: reached(KILL - 1), timeout=30)  # progress flows to the new one
        # ... and, on PostgreSQL, SIGKILL (a crash, a node lost).
        killed_at = None
        if backend == "postgres":
            server.kill()
            server.wait(timeout=30)
            killed_at = time.time()
            server = back(server)
        open_gate(KILL)
        wait_for_sync(lambda: reached(REDEPLOY - 1), timeout=30)

        # (b) The worker is redeployed: the old one is asked to stop, a new one starts.
        # New tasks go in once the server knows the old one drains (its drain frame went
        # before its log line): sent before, the old one would rightly run them.
        old.send_signal(signal.SIGTERM)
        redeployed_at = time.time()
        wait_for_sync(lambda: cluster.draining(old), timeout=20)
        new = cluster.worker(concurrency=2)
        meanwhile = client.submit_many(
            [{"function": "multiply", "args": [i, 7]} for i in range(10)]
        )
        done = [client.wait(o.id, 30) for o in meanwhile]
        assert old.poll() is None, "the old worker quit before its long task ended"
        open_gate(REDEPLOY)
        wait_for_sync(lambda: reached(STEPS) or client.tasks.get(long.id).state != "running", 60)
        task: Task = client.wait(long.id, 60)
        assert old.wait(timeout=30) == 0  # drained: it exits once its task has ended

    # One attempt, on the first worker, never cut, its lease never lost.
    assert (task.state, task.result, task.attempt) == ("succeeded", STEPS, 1)
    assert [a.outcome for a in task.attempts] == ["succeeded"]
    (attempt,) = task.attempts
    assert attempt.worker is not None and str(old.pid) in attempt.worker
    runs = (cluster.markers / "long.runs").read_text().split("\n")
    assert runs[:-1] == [f"1 {old.pid}"]  # started once
    assert "lease_lost" not in [e.stage for e in task.timeline]
    # The restarts and the redeploy happened while it ran.
    assert attempt.started_at is not None and attempt.finished_at is not None
    moments = [restarted_at, *([killed_at] if killed_at else []), redeployed_at]
    assert attempt.started_at < moments[0] and moments[-1] < attempt.finished_at
    assert moments == sorted(moments)
    # Its progress, read through the API, grew over time and reached the total.
    assert seen == sorted(seen) and len(set(seen)) >= 4, seen
    assert seen[0] < RESTART <= seen[-1]
    assert task.progress is not None
    assert (task.progress.done, task.progress.total, task.progress.attempt) == (STEPS, STEPS, 1)
    assert task.progress.message == "done"
    assert attempt.finished_at - 5 < task.progress.at
    # New tasks went to the new worker while the old one finished.
    assert [t.result for t in done] == [i * 7 for i in range(10)]
    assert all(t.attempts[0].worker and str(new.pid) in t.attempts[0].worker for t in done)
