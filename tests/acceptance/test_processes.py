"""Real `sluice server`, `sluice worker` and `sluice dev` processes, driven like a user would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import sluice
from tests.harness import free_port, wait_for_sync

pytestmark = pytest.mark.acceptance
ROOT = Path(__file__).resolve().parents[2]
SLUICE = [sys.executable, "-m", "sluice"]
FAST_ENV = {
    "SLUICE_LEASE_S": "2",
    "SLUICE_HEARTBEAT_S": "0.5",
    "SLUICE_REAP_INTERVAL_S": "0.2",
    "SLUICE_PROMOTE_INTERVAL_S": "0.2",
}


class Cluster:
    def __init__(self, tmp: Path, database: str | None = None) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.markers = tmp / "markers"
        self.markers.mkdir()
        self.env = {
            **os.environ,
            **FAST_ENV,
            "SLUICE_DATABASE": database or f"sqlite:///{tmp / 'sluice.db'}",
            "SLUICE_URL": self.url,
            "SLUICE_TEST_MARKERS": str(self.markers),
            "PYTHONPATH": str(ROOT),
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[object] = []
        created = subprocess.run(
            [*SLUICE, "tenant", "create", "acceptance", "-o", "json"],
            env=self.env, capture_output=True, check=True, cwd=tmp,
        )  # fmt: skip
        self.api_key = json.loads(created.stdout)["api_key"]
        self.env["SLUICE_API_KEY"] = self.api_key

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"proc-{len(self.procs)}.log", "wb")  # noqa: SIM115
        self.logs.append(log)
        proc = subprocess.Popen(
            [*SLUICE, *args], env=self.env, cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs.append(proc)
        return proc

    def server(self) -> subprocess.Popen[bytes]:
        wait_for_sync(lambda: not self._healthy(), timeout=20)  # the old one has let go
        proc = self.start("server", "--port", str(self.port))
        wait_for_sync(self._healthy, timeout=20)
        return proc

    def worker(self, concurrency: int = 1, processes: int = 1) -> subprocess.Popen[bytes]:
        before = int(self.health()["workers"])  # type: ignore[call-overload]
        proc = self.start(
            "worker", "tests.acceptance.workload:app", "--concurrency", str(concurrency),
            "--processes", str(processes),
        )  # fmt: skip
        wait_for_sync(lambda: self.health()["workers"] == before + processes, timeout=20)
        return proc

    def draining(self, proc: subprocess.Popen[bytes]) -> bool:
        """Has this worker said it drains? It says so once it has told the server."""
        log = self.tmp / f"proc-{self.procs.index(proc)}.log"
        return " draining: " in log.read_text(errors="replace")

    def health(self) -> dict[str, object]:
        return dict(httpx.get(f"{self.url}/v1/health", timeout=2).json())

    def _healthy(self) -> bool:
        try:
            return self.health()["status"] == "ok"
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for log in self.logs:
            log.close()  # type: ignore[attr-defined]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_server_and_worker_processes_run_submitted_tasks(cluster: Cluster) -> None:
    cluster.server()
    cluster.worker(concurrency=4)
    with sluice.Client(cluster.url, cluster.api_key) as client:
        outcomes = client.submit_many([{"function": "multiply", "args": [i, 3]} for i in range(50)])
        results = [client.wait(o.id, 20) for o in outcomes]
    assert [r.result for r in results] == [i * 3 for i in range(50)]
    assert all(r.state == "succeeded" and r.attempt == 1 for r in results)


def test_worker_processes_flag_runs_that_many_workers_and_sigterm_stops_them(
    cluster: Cluster,
) -> None:
    cluster.server()
    supervisor = cluster.worker(concurrency=2, processes=2)
    with sluice.Client(cluster.url, cluster.api_key) as client:
        outcomes = client.submit_many([{"function": "multiply", "args": [i, i]} for i in range(40)])
        tasks = [client.wait(o.id, 20) for o in outcomes]
    assert [t.result for t in tasks] == [i * i for i in range(40)]
    assert len({t.attempts[0].worker for t in tasks}) <= 2
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    wait_for_sync(lambda: cluster.health()["workers"] == 0, timeout=10)


def test_a_task_whose_worker_is_killed_runs_again_elsewhere(cluster: Cluster) -> None:
    cluster.server()
    first = cluster.worker()
    second = cluster.worker()
    with sluice.Client(cluster.url, cluster.api_key) as client:
        submitted = client.submit({"function": "stubborn", "args": ["job"]})
        marker = cluster.markers / "job.1"
        wait_for_sync(marker.exists, timeout=20)
        victim = int(marker.read_text())
        assert victim in (first.pid, second.pid)
        # What the handler printed is shipped while it runs: kept after the kill.
        wait_for_sync(lambda: list(client.tasks.logs(submitted.id)), timeout=10)
        os.kill(victim, signal.SIGKILL)
        task = client.wait(submitted.id, 30)
        lines = [(line.attempt, line.message) for line in client.tasks.logs(submitted.id)]
    survivor = second.pid if victim == first.pid else first.pid
    assert task.state == "succeeded"
    assert task.result == {"attempt": 2, "pid": survivor}
    assert [a.outcome for a in task.attempts] == ["lost", "succeeded"]
    assert "lease_lost" in [e.stage for e in task.timeline]
    assert lines == [(1, f"attempt 1 of job in {victim}"), (2, f"attempt 2 of job in {survivor}")]


def test_dev_runs_the_example_app_and_the_burst_script(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns(
        ".sluice", "outbox", "thumbnails", "images", "__pycache__"))  # fmt: skip
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["PYTHONPATH"] = str(ROOT)
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115
    dev = subprocess.Popen(
        [*SLUICE, "dev", "shop:app", "--port", str(port)],
        cwd=examples, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        dev_file = examples / ".sluice" / "dev.json"
        wait_for_sync(dev_file.exists, timeout=30)
        url = f"http://127.0.0.1:{port}"
        wait_for_sync(lambda: _workers(url) >= 1, timeout=30)
        burst = subprocess.run(
            [sys.executable, "burst.py", "--users", "20", "--images", "2"],
            cwd=examples, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert burst.returncode == 0, burst.stderr
        assert "all done" in burst.stdout
        assert len(list((examples / "outbox").glob("welcome-*.eml"))) == 20
        assert len(list((examples / "thumbnails").glob("*.jpg"))) == 6
        printed = (tmp_path / "dev.log").read_text()
        assert f"Sluice is running at {url}" in printed
        saved = json.loads(dev_file.read_text())
        assert f"export SLUICE_URL={url} SLUICE_API_KEY={saved['api_key']}" in printed
        assert f"SLUICE_ADMIN_KEY={saved['admin_key']}" in printed

        # The dev admin key, read from .sluice/dev.json, lets the tenant commands work.
        tenants = subprocess.run([*SLUICE, "tenants", "ls", "-o", "json"], cwd=examples,
                                 env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert "shop" in {t["name"] for t in json.loads(tenants.stdout)}, tenants.stderr
        # A task that fails is told in the dev console, in one line.
        submitted = subprocess.run(
            [*SLUICE, "submit", "send_welcome", "--kwargs", '{"user_id": 42}',
             "--max-attempts", "1", "-o", "json"],
            cwd=examples, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        task_id = json.loads(submitted.stdout)["id"]
        died = f"task dead: send_welcome {task_id} after attempt 1/1: TypeError: "
        wait_for_sync(lambda: died in (tmp_path / "dev.log").read_text(), timeout=30)
    finally:
        dev.send_signal(signal.SIGINT)  # Ctrl-C: the conventional exit status is 130
        try:
            assert dev.wait(timeout=30) in (0, 130)
        finally:
            if dev.poll() is None:
                dev.kill()
            log.close()


def _workers(url: str) -> int:
    try:
        return int(httpx.get(f"{url}/v1/health", timeout=2).json()["workers"])
    except httpx.HTTPError:
        return 0


def test_restarting_the_server_does_not_interrupt_a_running_task(cluster: Cluster) -> None:
    # Production-like timing: a lease longer than a restart plus the worker's reconnect
    # backoff (the 2 s lease of the other tests is shorter than a restart).
    cluster.env.update(SLUICE_LEASE_S="15", SLUICE_HEARTBEAT_S="1")
    server = cluster.server()
    cluster.worker()
    runs = cluster.markers / "upgrade.runs"
    with sluice.Client(cluster.url, cluster.api_key) as client:
        submitted = client.submit({"function": "sleepy", "args": ["upgrade", 20]})
        wait_for_sync(runs.exists, timeout=20)
        server.send_signal(signal.SIGTERM)  # an upgrade: stop, then start the new version
        assert server.wait(timeout=30) == 0
        cluster.server()
        task = client.wait(submitted.id, 40)
    assert (task.state, task.result, task.attempt) == ("succeeded", 1, 1)
    assert [a.outcome for a in task.attempts] == ["succeeded"]
    assert runs.read_text().split() == ["1"]  # it ran once, and was never cut
    assert "lease_lost" not in [e.stage for e in task.timeline]


def test_a_stopping_server_answers_submits_with_503_and_keeps_what_it_acknowledged(
    cluster: Cluster,
) -> None:
    server = cluster.server()
    acknowledged: list[str] = []
    refused: list[int] = []
    with httpx.Client(base_url=cluster.url) as http:
        headers = {"authorization": f"Bearer {cluster.api_key}"}
        body = {"function": "multiply", "args": [1, 2]}
        http.put("/v1/functions/multiply", json={}, headers=headers).raise_for_status()
        for i in range(2000):
            if i == 200:
                server.send_signal(signal.SIGTERM)
            try:
                answer = http.post("/v1/tasks", json=body, headers=headers)
            except httpx.TransportError:
                break  # the listener is gone
            if answer.status_code == 201:
                acknowledged.append(answer.json()["id"])
            else:
                assert answer.status_code == 503, answer.text
                assert int(answer.headers["retry-after"]) >= 1
                assert answer.json()["error"]["code"] == "unavailable"
                refused.append(i)
    assert server.wait(timeout=30) == 0
    assert len(acknowledged) >= 200
    assert refused, "no submit saw the 503 of a stopping server"
    import sqlite3

    with sqlite3.connect(cluster.tmp / "sluice.db") as db:
        stored = {row[0] for row in db.execute("SELECT id FROM tasks")}
    assert set(acknowledged) <= stored


def test_every_acknowledged_submit_survives_a_server_killed_mid_burst(cluster: Cluster) -> None:
    server = cluster.server()
    acknowledged: list[str] = []
    with httpx.Client(base_url=cluster.url) as http:
        headers = {"authorization": f"Bearer {cluster.api_key}"}
        http.put("/v1/functions/multiply", json={}, headers=headers).raise_for_status()
        batch = {"tasks": [{"function": "multiply", "args": [i, 2]} for i in range(50)]}
        for i in range(400):
            if i == 150:
                server.send_signal(signal.SIGKILL)  # a crash: no shutdown code runs
            try:
                answer = http.post("/v1/tasks/batch", json=batch, headers=headers)
            except httpx.TransportError:
                break
            assert answer.status_code == 201
            acknowledged += [t["id"] for t in answer.json()["tasks"]]
    server.wait(timeout=10)
    assert len(acknowledged) >= 150 * 50
    cluster.server()  # recovery: the database opens and replays its WAL
    with sluice.Client(cluster.url, cluster.api_key) as client:
        sample = [client.get(task_id).state for task_id in acknowledged[-50:]]
    assert set(sample) == {"ready"}
    import sqlite3

    with sqlite3.connect(cluster.tmp / "sluice.db") as db:
        stored = {row[0] for row in db.execute("SELECT id FROM tasks")}
    assert set(acknowledged) <= stored
