"""Elastic workers with real processes (issue 18, points 3 and 5): `sluice worker
--autoscale 0:3` starts processes within a second of a burst and stops them after, by
draining; a worker asked to stop finishes its long task while a new worker takes new
tasks; no task runs twice and none is lost."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

import sluice
from sluice.worker.supervisor import Children
from tests.acceptance.test_processes import Cluster, cluster  # noqa: F401 (a fixture)
from tests.harness import wait_for_sync

pytestmark = pytest.mark.acceptance
SCALED = re.compile(r"autoscale: (\d+) -> (\d+) processes")


def scalings(log: Path) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in SCALED.findall(log.read_text(errors="replace"))]


@pytest.mark.alone  # a one-second bound: beside other process tests it starves
def test_a_burst_scales_workers_up_within_a_second_and_back_to_zero_after(
    cluster: Cluster,  # noqa: F811
) -> None:
    cluster.env["SLUICE_SCALE_DOWN_AFTER_S"] = "3"
    cluster.server()
    supervisor = cluster.start(
        "worker", "tests.acceptance.workload:app", "--autoscale", "0:3", "--concurrency", "4"
    )
    log = cluster.tmp / f"proc-{len(cluster.procs) - 1}.log"
    with sluice.Client(cluster.url, cluster.api_key) as client:
        client.functions.set("sleepy", {})  # known before any worker connects
        assert cluster.health()["workers"] == 0  # MIN is 0: nothing to do, no process
        names = [f"burst-{i}" for i in range(24)]
        outcomes = client.submit_many(
            [{"function": "sleepy", "args": [name, 0.5]} for name in names]
        )
        submitted_at = time.monotonic()  # committed: from here the server counts them
        wait_for_sync(lambda: scalings(log), timeout=10)
        decided_in = time.monotonic() - submitted_at
        tasks = [client.wait(o.id, 60) for o in outcomes]
    assert decided_in < 1.0, f"scaled up {decided_in:.2f} s after the burst"
    assert scalings(log)[0] == (0, 3)  # 24 tasks / 4 slots: as many as allowed
    assert all(t.state == "succeeded" and t.attempt == 1 for t in tasks)
    for name in names:  # each ran once
        assert (cluster.markers / f"{name}.runs").read_text().split() == ["1"]
    wait_for_sync(lambda: scalings(log)[-1][1] == 0, timeout=30)
    wait_for_sync(lambda: cluster.health()["workers"] == 0, timeout=30)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    ups = [b > a for a, b in scalings(log)]
    assert ups == sorted(ups, reverse=True), "it went down, then up again: a flap"


def test_a_redeployed_worker_finishes_its_long_task_while_the_new_one_takes_new_tasks(
    cluster: Cluster,  # noqa: F811
) -> None:
    cluster.server()
    old = cluster.worker(concurrency=2)
    runs = cluster.markers / "long.runs"
    with sluice.Client(cluster.url, cluster.api_key) as client:
        long = client.submit({"function": "gated", "args": ["long"]})
        wait_for_sync(runs.exists, timeout=20)
        old.send_signal(signal.SIGTERM)  # a deploy: the old worker is asked to stop
        wait_for_sync(lambda: cluster.draining(old), timeout=20)  # the server knows
        new = cluster.worker(concurrency=2)  # ... and the new one starts
        meanwhile = client.submit_many(
            [{"function": "multiply", "args": [i, 2]} for i in range(10)]
        )
        done = [client.wait(o.id, 20) for o in meanwhile]
        assert old.poll() is None, "the old worker quit before its task ended"
        (cluster.markers / "long.go").touch()  # the long task may end now
        task = client.wait(long.id, 30)
        assert old.wait(timeout=30) == 0
    assert [t.result for t in done] == [i * 2 for i in range(10)]
    assert {str(new.pid) in t.attempts[0].worker for t in done} == {True}
    assert (task.state, task.result, task.attempt) == ("succeeded", 1, 1)
    assert str(old.pid) in task.attempts[0].worker
    assert [a.outcome for a in task.attempts] == ["succeeded"]
    assert runs.read_text().split() == ["1"]  # started once, never cut


def test_a_grace_shortens_the_drain_and_hands_the_task_back_without_using_an_attempt(
    cluster: Cluster,  # noqa: F811
) -> None:
    cluster.server()
    old = cluster.start("worker", "tests.acceptance.workload:app", "--grace", "0.5")
    wait_for_sync(lambda: cluster.health()["workers"] == 1, timeout=20)
    runs = cluster.markers / "cut.runs"
    with sluice.Client(cluster.url, cluster.api_key) as client:
        submitted = client.submit({"function": "sleepy", "args": ["cut", 2]})
        wait_for_sync(runs.exists, timeout=20)
        old.send_signal(signal.SIGTERM)
        assert old.wait(timeout=20) == 0  # out of grace long before the task's 2 s
        cluster.worker()
        task = client.wait(submitted.id, 30)
    assert (task.state, task.attempt) == ("succeeded", 1)  # the hand-back used none
    assert len(runs.read_text().split()) == 2  # started again from the beginning
    assert "lease_lost" not in [e.stage for e in task.timeline]


def test_a_jobs_worker_runs_what_is_ready_then_exits_once_idle(
    cluster: Cluster,  # noqa: F811
) -> None:
    cluster.server()
    with sluice.Client(cluster.url, cluster.api_key) as client:
        client.functions.set("multiply", {})
        outcomes = client.submit_many([{"function": "multiply", "args": [i, 3]} for i in range(5)])
        job = cluster.start("worker", "tests.acceptance.workload:app", "--exit-when-idle", "1")
        assert job.wait(timeout=30) == 0  # it ran the 5, then had nothing for 1 s
        tasks = [client.get(o.id) for o in outcomes]
    assert [(t.state, t.result) for t in tasks] == [("succeeded", i * 3) for i in range(5)]
    assert {str(job.pid) in t.attempts[0].worker for t in tasks} == {True}


def test_a_bad_autoscale_range_is_refused_with_its_reason(cluster: Cluster) -> None:  # noqa: F811
    for bad in ("3:1", "0:0", "x", "1-4"):
        proc = cluster.start("worker", "tests.acceptance.workload:app", "--autoscale", bad)
        assert proc.wait(timeout=30) == 2
    printed = "".join(p.read_text() for p in sorted(cluster.tmp.glob("proc-*.log")))
    assert printed.count("--autoscale takes MIN:MAX with 0 <= MIN <= MAX and MAX >= 1") == 4


def test_stopping_the_supervisor_does_not_hurry_a_process_it_already_drains(
    cluster: Cluster,  # noqa: F811
) -> None:
    """A retired process is draining; the supervisor's own stop must not signal it again
    (a second SIGTERM hands running tasks back), only the others."""
    cluster.server()
    children = Children(["worker", "tests.acceptance.workload:app", "--concurrency", "1"],
                        cluster.env)  # fmt: skip
    runs = cluster.markers / "drained.runs"
    try:
        with sluice.Client(cluster.url, cluster.api_key) as client:
            children.start()
            wait_for_sync(lambda: cluster.health()["workers"] == 1, timeout=20)
            submitted = client.submit({"function": "gated", "args": ["drained"]})
            wait_for_sync(runs.exists, timeout=20)
            children.retire()  # the only process: it drains under its task
            (draining,) = children.draining
            children.start()
            wait_for_sync(lambda: cluster.health()["workers"] == 2, timeout=20)
            children.signal_all(signal.SIGTERM)  # the supervisor is told to stop
            (cluster.markers / "drained.go").touch()  # its task, still running, may end
            wait_for_sync(lambda: not children.reap(), timeout=30)
            task = client.wait(submitted.id, 10)
    finally:
        children.signal_all(signal.SIGKILL)
        children.signal_all(signal.SIGKILL)
    assert draining.returncode == 0
    assert (task.state, task.attempt) == ("succeeded", 1)
    assert str(draining.pid) in task.attempts[0].worker
    assert runs.read_text().split() == ["1"]  # finished where it started: not handed back
