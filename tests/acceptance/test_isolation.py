"""Process isolation and resource-aware slots (docs/isolation.md), with real `sluice
server` and `sluice worker` processes."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import sluice
from sluice.contract import Task
from tests.acceptance.test_processes import SLUICE, Cluster
from tests.harness import wait_for_sync

pytestmark = pytest.mark.acceptance
APP = "tests.acceptance.isolated:app"
POOL_KEY = "pool-key-for-the-isolation-tests"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path)
    running.env["SLUICE_POOL_KEY"] = POOL_KEY
    try:
        yield running
    finally:
        running.stop()


def _worker(cluster: Cluster, *args: str, key: str | None = None) -> subprocess.Popen[bytes]:
    before = int(cluster.health()["workers"])  # type: ignore[call-overload]
    env = dict(cluster.env)
    if key is not None:
        env["SLUICE_API_KEY"] = key
    saved, cluster.env = cluster.env, env
    try:
        proc = cluster.start("worker", APP, *args)
    finally:
        cluster.env = saved
    wait_for_sync(lambda: cluster.health()["workers"] == before + 1, timeout=30)
    return proc


def _errors(task: Task) -> list[str | None]:
    return [a.error_type for a in task.attempts]


def test_a_handler_that_blows_up_fails_with_its_class_and_the_worker_carries_on(
    cluster: Cluster,
) -> None:
    cluster.server()
    worker = _worker(cluster, "--concurrency", "4")
    with sluice.Client(cluster.url, cluster.api_key) as client:
        bad = {
            "MemoryLimitExceeded": client.submit({"function": "hog", "args": [512]}),
            "SIGABRT": client.submit({"function": "aborts"}),
            "SIGSEGV": client.submit({"function": "segfaults"}),
            "TimedOut": client.submit({"function": "spins"}),
            "CpuLimitExceeded": client.submit({"function": "burns"}),
        }
        good = client.submit_many([{"function": "quick", "args": [i]} for i in range(40)])
        children = client.submit_many([{"function": "whoami", "args": [str(i)]} for i in range(8)])
        ended = {kind: client.wait(t.id, 60) for kind, t in bad.items()}
        results = [client.wait(t.id, 60) for t in [*good, *children]]
    assert [r.state for r in results] == ["succeeded"] * 48
    assert [r.result for r in results[:40]] == list(range(40))
    assert worker.pid not in {r.result for r in results[40:]}  # the children ran those
    # Meanwhile: the quick tasks ran while the bad ones were still failing.
    last_bad = max(a.finished_at or 0 for t in ended.values() for a in t.attempts)
    assert max(r.attempts[0].finished_at or 0 for r in results) < last_bad
    for kind, task in ended.items():
        assert task.state == "dead", (kind, task)
        assert len(task.attempts) == 2, (kind, task.attempts)  # retried by its policy
    assert _errors(ended["MemoryLimitExceeded"]) == ["MemoryLimitExceeded"] * 2
    assert "64 MiB" in (ended["MemoryLimitExceeded"].error or "")
    for crash in ("SIGABRT", "SIGSEGV"):
        assert _errors(ended[crash]) == ["WorkerCrashed"] * 2
        assert crash in (ended[crash].attempts[0].error_message or "")
    assert _errors(ended["TimedOut"]) == ["TimedOut"] * 2
    assert [a.outcome for a in ended["TimedOut"].attempts] == ["timed_out"] * 2
    assert _errors(ended["CpuLimitExceeded"]) == ["CpuLimitExceeded"] * 2
    # The worker itself never died: one connection all along, the same process.
    assert worker.poll() is None
    assert cluster.health()["workers"] == 1


def test_what_a_child_prints_and_logs_reaches_the_attempts_logs(cluster: Cluster) -> None:
    cluster.server()
    worker = _worker(cluster)
    with sluice.Client(cluster.url, cluster.api_key) as client:
        task = client.wait(client.submit({"function": "whoami", "args": ["me"]}).id, 30)
        lines = {line.message for line in client.tasks.logs(task.id)}
        coroutine = client.wait(client.submit({"function": "awhoami"}).id, 30)
        in_thread = client.wait(client.submit({"function": "shared_pid"}).id, 30)
    assert task.state == "succeeded"
    # A function that chooses nothing runs in a tenant's own worker's process (the
    # default for speed); a shared pool's worker isolates it (the test below).
    assert (in_thread.state, in_thread.result) == ("succeeded", worker.pid)
    assert {"printed by me in the child", "logged by me in the child"} <= lines
    assert coroutine.state == "succeeded"  # an async handler runs isolated too
    assert coroutine.result not in (None, worker.pid)


def test_cancel_kills_a_running_isolated_sync_handler_at_once(cluster: Cluster) -> None:
    cluster.server()
    _worker(cluster)
    with sluice.Client(cluster.url, cluster.api_key) as client:
        task = client.submit({"function": "hangs", "args": ["victim"]})
        marker = cluster.markers / "victim.pid"
        wait_for_sync(marker.exists, timeout=30)
        pid = int(marker.read_text())
        client.cancel(task.id)
        wait_for_sync(lambda: not _alive(pid), timeout=5)  # killed, not left sleeping
        after = client.wait(client.submit({"function": "whoami", "args": ["next"]}).id, 30)
        state = client.get(task.id).state
    assert state == "cancelled"
    assert after.state == "succeeded" and after.result != pid


def test_a_child_is_reused_and_replaced_after_its_max_tasks(cluster: Cluster) -> None:
    cluster.server()
    _worker(cluster, "--concurrency", "1", "--child-max-tasks", "3")
    with sluice.Client(cluster.url, cluster.api_key) as client:
        pids = []
        for i in range(7):  # one at a time: each finds the child the last one left
            done = client.wait(client.submit({"function": "whoami", "args": [str(i)]}).id, 30)
            pids.append(done.result)
    assert pids[0] == pids[1] == pids[2]
    assert pids[3] == pids[4] == pids[5]
    assert len({pids[0], pids[3], pids[6]}) == 3


def test_a_child_past_its_resident_memory_bound_is_replaced(cluster: Cluster) -> None:
    cluster.server()
    _worker(cluster, "--concurrency", "1", "--child-max-rss-mb", "1")  # any child is past it
    with sluice.Client(cluster.url, cluster.api_key) as client:
        pids = [
            client.wait(client.submit({"function": "whoami", "args": [str(i)]}).id, 30).result
            for i in range(3)
        ]
    assert len(set(pids)) == 3


def test_a_shared_pool_isolates_by_default_and_never_shares_a_child_between_tenants(
    cluster: Cluster,
) -> None:
    cluster.server()
    other = _tenant(cluster, "other")
    worker = _worker(cluster, "--concurrency", "2", key=POOL_KEY)
    pids: dict[str, set[int]] = {}
    for name, key in (("acceptance", cluster.api_key), ("other", other)):
        with sluice.Client(cluster.url, key) as client:
            outcomes = client.submit_many([{"function": "shared_pid"} for _ in range(6)])
            tasks = [client.wait(o.id, 30) for o in outcomes]
        assert [t.state for t in tasks] == ["succeeded"] * 6
        pids[name] = {t.result for t in tasks}
    with sluice.Client(cluster.url, cluster.api_key) as client:  # and back to the first
        again = client.wait(client.submit({"function": "shared_pid"}).id, 30).result
    assert worker.pid not in pids["acceptance"] | pids["other"]
    assert not pids["acceptance"] & pids["other"]
    assert again not in pids["other"]


def test_a_worker_runs_together_only_the_tasks_that_fit_its_memory(cluster: Cluster) -> None:
    cluster.server()
    _worker(cluster, "--concurrency", "8", "--memory-mb", "3072")
    with sluice.Client(cluster.url, cluster.api_key) as client:
        bigs = client.submit_many([{"function": "big", "args": [str(i)]} for i in range(9)])
        quicks = client.submit_many([{"function": "quick", "args": [i]} for i in range(60)])
        big_tasks = [client.wait(t.id, 60) for t in bigs]
        quick_tasks = [client.wait(t.id, 60) for t in quicks]
    assert [t.state for t in big_tasks + quick_tasks] == ["succeeded"] * 69
    spans = [(t.attempts[0].started_at or 0, t.attempts[0].finished_at or 0) for t in big_tasks]
    most = max(sum(1 for s, f in spans if s <= at < f) for at, _ in spans)
    assert most <= 3  # 3 GiB offered, 1 GiB each
    assert most >= 2  # and they did run together
    first, last = min(s for s, _ in spans), max(f for _, f in spans)
    flowing = [t for t in quick_tasks if first < (t.attempts[0].started_at or 0) < last]
    assert flowing  # no-op tasks kept starting while the big ones held the memory


def _tenant(cluster: Cluster, name: str) -> str:
    created = subprocess.run(
        [*SLUICE, "tenant", "create", name, "-o", "json"],
        env=cluster.env, capture_output=True, check=True, cwd=cluster.tmp,
    )  # fmt: skip
    return str(json.loads(created.stdout)["api_key"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: its parent has not reaped it yet.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False
