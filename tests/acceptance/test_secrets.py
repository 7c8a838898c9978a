"""No secret in anything a run shows. A real `sluice server` on PostgreSQL with a password
in its URL, an admin key, a pool key, tenant keys, an HTTP target signing with a `whsec_`
secret, and real workers; submits, failures, refused and revoked keys, bad requests,
workers coming and going. Then every line the processes wrote and every HTTP answer is
searched for every secret."""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import signal
import subprocess
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.engine.targets import sign
from tests import pg
from tests.acceptance.test_processes import FAST_ENV, ROOT, SLUICE
from tests.harness import free_port, wait_for_sync

pytestmark = pytest.mark.acceptance
WORKLOAD = "tests.acceptance.workload:app"


@pytest.fixture
async def database() -> AsyncIterator[str]:
    await pg.require_postgres()
    async with pg.fresh_database() as dsn:
        yield dsn


def with_password(dsn: str) -> tuple[str, str]:
    """The URL with a password (the test server trusts any), and the password."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.password:  # SLUICE_TEST_PG names a server that wants its own
        return dsn, parts.password
    password = f"pw-{secrets.token_hex(12)}"
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.netloc.rpartition('@')[2]}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), password


@dataclass
class Answer:
    what: str
    body: bytes
    may_show: set[str] = field(default_factory=set)  # secrets this answer exists to hand out


class Api:
    """An HTTP client that keeps every answer it gets."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.answers: list[Answer] = []

    def __call__(self, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        response = self.http.request(method, path, headers=headers, **kw)
        self.answers.append(Answer(f"{method} {path} -> {response.status_code}", response.content))
        return response

    def shown_by_design(self, secret: str) -> None:
        """The last answer hands `secret` to its owner, once (a new key; a target's
        signing secret the server made: docs/http-targets.md)."""
        assert secret.encode() in self.answers[-1].body
        self.answers[-1].may_show.add(secret)

    def result(self, task_id: str, key: str) -> dict[str, Any]:
        answer = self("GET", f"/v1/tasks/{task_id}/result", key, params={"timeout": "20"})
        task: dict[str, Any] = answer.json()
        return task


class Target(http.server.BaseHTTPRequestHandler):
    """An HTTP target on loopback: checks each request's signature, refuses `["fail"]`."""

    secret = ""
    signatures: list[bool] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        expected = sign(
            self.secret, self.headers["webhook-id"], int(self.headers["webhook-timestamp"]), body
        )
        self.signatures.append(self.headers["webhook-signature"] == expected)
        refused = json.loads(body)["args"] == ["fail"]
        self.send_response(400 if refused else 200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "refused"}' if refused else b'{"ok": true}')

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's own output is not under test


@pytest.fixture
def target() -> Iterator[tuple[str, type[Target]]]:
    handler = type("SigningTarget", (Target,), {"signatures": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/run", handler
    finally:
        server.shutdown()
        server.server_close()


class Processes:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        out = self.tmp / f"proc-{len(self.procs)}.log"
        with out.open("wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [*SLUICE, *args], env={**self.env, **env}, cwd=self.tmp,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.procs.append((proc, out))
        return proc

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SLUICE, *args], env={**self.env, **env}, cwd=self.tmp,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        for proc, _ in reversed(self.procs):  # workers first; SIGTERM, so supervisors pass it on
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_no_secret_reaches_a_log_line_an_error_or_an_answer(
    tmp_path: Path, database: str, target: tuple[str, type[Target]]
) -> None:
    dsn, password = with_password(database)
    admin, pool = f"admin-{secrets.token_hex(16)}", f"pool-{secrets.token_hex(16)}"
    whsec = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    target_url, handler = target
    handler.secret = whsec
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env.update(FAST_ENV, PYTHONPATH=str(ROOT), SLUICE_DATABASE=dsn, SLUICE_ADMIN_KEY=admin,
               SLUICE_POOL_KEY=pool, SLUICE_TARGETS_ALLOW_LOOPBACK="true",
               SLUICE_URL=f"http://127.0.0.1:{port}")  # fmt: skip
    processes = Processes(tmp_path, env)
    api = Api(f"http://127.0.0.1:{port}")
    try:
        server = processes.start("server", "--port", str(port))
        wait_for_sync(lambda: _healthy(api), timeout=20)

        created = api("POST", "/v1/tenants", admin, json={"name": "secrets"}).json()
        tenant_id, key = created["id"], created["api_key"]
        api.shown_by_design(key)
        spare = api("POST", f"/v1/tenants/{tenant_id}/keys", admin).json()
        api.shown_by_design(spare["api_key"])
        assert api("GET", "/v1/tasks", spare["api_key"]).status_code == 200
        assert api("DELETE", f"/v1/tenants/{tenant_id}/keys/{spare['id']}", admin).is_success
        refused = [
            api("GET", "/v1/tasks", spare["api_key"]),  # revoked
            api("GET", "/v1/tasks", f"sk_{secrets.token_urlsafe(32)}"),
            api("GET", "/v1/tasks"),
            api("GET", "/v1/tasks", pool),  # the pool key opens no HTTP route
            api("GET", "/v1/tenants", key),  # an admin route, with a tenant key
            api("POST", "/v1/tasks", key, content=b'{"function": '),
            api("POST", "/v1/tasks", key, json={"function": "multiply", "priority": 99}),
        ]
        assert [r.status_code for r in refused][:4] == [401] * 4
        assert all(400 <= r.status_code < 500 for r in refused)

        hook = {"target": {"url": target_url, "secret": whsec}, "retry": {"max_attempts": 1}}
        answer = api("PUT", "/v1/functions/hook", key, json=hook)
        assert answer.status_code == 200, answer.text
        # A secret the caller gave is not echoed, and reads never show one.
        assert api("GET", "/v1/functions/hook", key).status_code == 200
        assert api("GET", "/v1/functions", key).status_code == 200

        before = _workers(api)  # the HTTP target counts as one
        workers = processes.start("worker", WORKLOAD, "--processes", "2", "--api-key", key)
        pooled = processes.start("worker", WORKLOAD, SLUICE_API_KEY=pool)
        wait_for_sync(lambda: _workers(api) == before + 3, timeout=30)
        for child in children(workers.pid):  # the key reached them through the environment
            assert key.encode() not in Path(f"/proc/{child}/cmdline").read_bytes()

        one = {"retry": {"max_attempts": 1}}
        submitted = [
            api("POST", "/v1/tasks", key, json={"function": "multiply", "args": [3, 4]}),
            api("POST", "/v1/tasks", key, json={"function": "multiply", "args": [None, 4], **one}),
            api("POST", "/v1/tasks", key, json={"function": "hook", "args": ["ok"]}),
            api("POST", "/v1/tasks", key, json={"function": "hook", "args": ["fail"]}),
        ]
        batch = [{"function": "multiply", "args": [i, 2]} for i in range(10)]
        batched = api("POST", "/v1/tasks/batch", key, json={"tasks": batch})
        ids = [r.json()["id"] for r in submitted] + [t["id"] for t in batched.json()["tasks"]]
        ended = [api.result(task_id, key) for task_id in ids]
        states = ["succeeded", "dead", "succeeded", "dead", *["succeeded"] * 10]
        assert [t["state"] for t in ended] == states
        assert ended[0]["result"] == 12
        assert handler.signatures == [True, True]
        api("GET", "/v1/tasks", key, params={"state": "dead"})
        api("GET", "/v1/dead", key)

        for proc in (workers, pooled):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        wait_for_sync(lambda: _workers(api) == before, timeout=10)

        # Command output and start-up failures show the database URL too.
        migrated = processes.run("migrate")
        assert migrated.returncode == 0, migrated.stderr
        unreachable = f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/sluice"
        failed = processes.run("server", "--port", str(free_port()), SLUICE_DATABASE=unreachable)
        assert failed.returncode != 0
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        processes.stop()
        api.http.close()

    logs = {str(out.name): out.read_text() for _, out in processes.procs}
    logs["migrate"] = migrated.stdout + migrated.stderr
    logs["unreachable"] = failed.stdout + failed.stderr
    server_log = logs["proc-0.log"]
    # What was searched holds what a run says, or this test could pass on empty logs.
    assert f"serving on http://127.0.0.1:{port} (postgresql://postgres:***@" in server_log
    assert server_log.count(" connected: ") == 3
    assert server_log.count(" disconnected") == 3
    assert "function hook of" in server_log
    assert logs["proc-1.log"].count("connected to ws://") == 2
    assert "connected to ws://" in logs["proc-2.log"]
    assert "schema version" in logs["migrate"]
    assert "ConnectionRefusedError" in logs["unreachable"]

    hidden = {
        "database password": password,
        "admin key": admin,
        "pool key": pool,
        "tenant key": key,
        "revoked key": spare["api_key"],
        "target secret": whsec,
        "target secret's key": whsec.removeprefix("whsec_"),
    }
    for name, text in logs.items():
        for what, secret in hidden.items():
            assert secret not in text, f"{what} in {name}"
    for answer in api.answers:
        for what, secret in hidden.items():
            if not any(secret in shown for shown in answer.may_show):
                assert secret.encode() not in answer.body, f"{what} in {answer.what}"
    assert len(api.answers) > 25


def _workers(api: Api) -> int:
    return int(api("GET", "/v1/health").json()["workers"])


def _healthy(api: Api) -> bool:
    try:
        return bool(api("GET", "/v1/health").json()["status"] == "ok")
    except httpx.HTTPError:
        return False
