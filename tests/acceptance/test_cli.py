"""The CLI against a real server and worker: what a person or a script would type.

One server and worker process serve the module; each test works on its own tags or
functions. A few commands run as real `sluice` subprocesses; the rest run the same
command in-process (typer's runner), since each interpreter start costs about a second.
Exit codes are checked as scripts would rely on them (docs/cli.md).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from typer.testing import CliRunner

import sluice as sluice_client
from sluice.cli.main import cli
from tests import pg
from tests.acceptance.test_processes import SLUICE, Cluster
from tests.harness import free_port, wait_for_sync

pytestmark = pytest.mark.acceptance
ADMIN = "admin-secret-for-tests"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("cli"))
    running.env["SLUICE_ADMIN_KEY"] = ADMIN
    running.env["SLUICE_CONFIG"] = str(running.tmp / "profiles.toml")
    running.env["SLUICE_WEBHOOKS_ALLOW_LOOPBACK"] = "true"  # the webhook test's receiver
    running.env["SLUICE_WEBHOOK_RETRY_S"] = "0.2,0.2,0.2"
    try:
        running.server()
        running.worker(concurrency=2)
        yield running
    finally:
        running.stop()


def sluice(
    cluster: Cluster, *args: str, code: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*SLUICE, *args], env={**cluster.env, **(env or {})}, cwd=cluster.tmp,
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == code, (done.stdout, done.stderr)
    return done


class Ran:
    def __init__(self, stdout: str, stderr: str) -> None:
        self.stdout, self.stderr = stdout, stderr


def run(cluster: Cluster, *args: str, code: int = 0, env: dict[str, str] | None = None) -> Ran:
    """The command in this process, with the subprocesses' environment; stdin is no tty."""
    result = CliRunner().invoke(cli, list(args), env={**cluster.env, **(env or {})})
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return Ran(result.stdout, result.stderr)


def as_json(cluster: Cluster, *args: str, code: int = 0) -> Any:
    return json.loads(run(cluster, *args, "--output", "json", code=code).stdout)


@pytest.fixture(autouse=True)
def _in_cluster_dir(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cluster.tmp)  # no stray .sluice/dev.json is read


def test_submit_wait_list_get_and_the_exit_codes_of_failures(cluster: Cluster) -> None:
    waited = sluice(cluster, "submit", "multiply", "--args", "[6, 7]", "--wait", "20", "--json")
    answer = json.loads(waited.stdout)
    assert (answer["state"], answer["result"]) == ("succeeded", 42)

    later = sluice(cluster, "submit", "multiply", "--args", "[1, 1]", "--delay", "300",
                   "--tag", "later", "--priority", "8").stdout.split()  # fmt: skip
    assert later[1] == "scheduled"
    listed = json.loads(run(cluster, "tasks", "ls", "--tag", "later", "--json").stdout)
    assert [t["id"] for t in listed] == [later[0]]
    assert as_json(cluster, "tasks", "ls", "--tag", "later", "--priority-max", "7") == []
    assert len(as_json(cluster, "tasks", "ls", "--created-after", "1h", "--limit", "1")) == 1
    assert later[0] in run(cluster, "tasks", "ls", "--state", "scheduled").stdout
    shown = as_json(cluster, "tasks", "get", later[0])
    assert (shown["id"], shown["tags"], shown["priority"]) == (later[0], ["later"], 8)
    assert "scheduled" in run(cluster, "tasks", "get", later[0]).stdout
    assert as_json(cluster, "tasks", "cancel", later[0]) == [{"id": later[0], "state": "cancelled"}]
    assert as_json(cluster, "tasks", "delete", later[0]) == [{"id": later[0], "state": "deleted"}]

    unknown = sluice(cluster, "submit", "nope", code=3)
    assert "404 unknown_function (function)" in unknown.stderr
    missing = run(cluster, "tasks", "get", "no-such-task", code=3)
    assert "404 task_not_found" in missing.stderr
    error = json.loads(run(cluster, "tasks", "get", "no-such-task", "-o", "json", code=3).stderr)
    assert error["error"]["code"] == "task_not_found"
    run(cluster, "submit", "multiply", "--args", "not json", code=2)
    run(cluster, "tasks", "ls", "--created-after", "yesterday-ish", code=2)
    run(cluster, "tasks", "cancel", code=2)  # neither ids nor --where
    run(cluster, "tasks", "cancel", "--tag", "x", code=2)  # a selector without --where
    sluice(cluster, "tasks", "ls", code=4, env={"SLUICE_URL": "http://127.0.0.1:9"})
    run(cluster, "tasks", "ls", code=1, env={"SLUICE_API_KEY": "sk_revoked"})
    failed = run(cluster, "submit", "multiply", "--args", "[1]", "--max-attempts", "1",
                    "--wait", "20", code=6)  # fmt: skip
    assert "dead" in failed.stdout


def test_bulk_verbs_count_then_ask_and_refuse_without_a_terminal(cluster: Cluster) -> None:
    for i in range(5):
        run(cluster, "submit", "multiply", "--args", f"[{i}, 1]", "--delay", "300",
               "--tag", "bulk")  # fmt: skip
    refused = sluice(cluster, "tasks", "cancel", "--where", "--tag", "bulk", code=5)
    assert "5 tasks to cancel" in refused.stdout
    assert "--yes" in refused.stderr
    assert len(as_json(cluster, "tasks", "ls", "--tag", "bulk", "--state", "scheduled")) == 5

    done = as_json(cluster, "tasks", "cancel", "--where", "--tag", "bulk", "--yes")
    assert done == {"matched": 5, "count": 5}
    assert "0 tasks to cancel" in run(cluster, "tasks", "cancel", "--where", "--tag", "bulk").stdout
    deleted = run(cluster, "tasks", "delete", "--where", "--tag", "bulk", "--state",
                     "cancelled", "-y").stdout  # fmt: skip
    assert "deleted 5" in deleted
    assert as_json(cluster, "tasks", "ls", "--tag", "bulk") == []


def test_dead_letters_are_listed_and_retried_by_id_and_by_selector(cluster: Cluster) -> None:
    ids = [
        sluice(
            cluster, "submit", "multiply", "--args", "[1]", "--max-attempts", "1", "--tag", "doomed"
        ).stdout.split()[0]
        for _ in range(3)
    ]
    wait_for_sync(lambda: len(as_json(cluster, "tasks", "ls", "--tag", "doomed", "--state",
                                      "dead")) == 3, timeout=20)  # fmt: skip
    dead = as_json(cluster, "dlq", "ls", "--function", "multiply", "--limit", "0")
    assert set(ids) <= {t["id"] for t in dead}
    # Back to ready; by the time the answer is read it may have run, failed and be waiting
    # for its next attempt (scheduled), or have died again.
    retried = as_json(cluster, "tasks", "retry", ids[0])[0]["state"]
    assert retried in ("ready", "running", "scheduled", "dead")
    run(cluster, "dlq", "retry", code=2)
    retried = as_json(cluster, "dlq", "retry", "--where", "--function", "multiply", "--yes")
    assert retried["count"] >= 2
    assert as_json(cluster, "tasks", "retry", "--where", "--tag", "nothing-matches") == {
        "matched": 0, "count": 0}  # fmt: skip


def test_functions_are_listed_read_and_changed_one_field_at_a_time(cluster: Cluster) -> None:
    names = [f["name"] for f in as_json(cluster, "functions", "ls")]
    assert "multiply" in names
    changed = as_json(cluster, "functions", "set", "resize", "--timeout", "30",
                      "--max-attempts", "3", "--tag", "images")  # fmt: skip
    assert (changed["timeout_s"], changed["retry"]["max_attempts"]) == (30, 3)
    again = as_json(cluster, "functions", "set", "resize", "--priority", "7")
    assert (again["timeout_s"], again["priority"], again["tags"]) == (30, 7, ["images"])
    assert as_json(cluster, "functions", "get", "resize") == again
    assert "resize" in run(cluster, "functions", "ls").stdout
    run(cluster, "functions", "get", "no_such_function", code=3)
    run(cluster, "functions", "set", "resize", "--priority", "12", code=1)
    limited = as_json(cluster, "functions", "set", "resize", "--rate", "50", "--burst", "5",
                      "--max-concurrency", "4")  # fmt: skip
    assert (limited["rate"], limited["burst"], limited["max_concurrency"]) == (50, 5, 4)
    kept = as_json(cluster, "functions", "set", "resize", "--priority", "6")
    assert (kept["rate"], kept["max_concurrency"], kept["timeout_s"]) == (50, 4, 30)
    run(cluster, "functions", "set", "resize", "--rate", "0", code=1)


def test_tenants_and_keys_through_the_admin_api_with_a_profile(cluster: Cluster) -> None:
    made = as_json(cluster, "tenants", "create", "cli-shop")
    assert made["api_key"].startswith("sk_")
    assert "cli-shop" in {t["name"] for t in as_json(cluster, "tenants", "ls")}
    # The server hides admin routes from other keys (a 404); the CLI knows it sent an
    # admin key and says which one was refused.
    refused = run(cluster, "tenants", "ls", code=1, env={"SLUICE_ADMIN_KEY": "wrong"})
    assert "the admin key was not accepted (SLUICE_ADMIN_KEY" in refused.stderr
    # `tenant` is the same command as `tenants`, with the same output.
    alias = run(cluster, "tenant", "create", "cli-alias").stdout.splitlines()
    plural = run(cluster, "tenants", "create", "cli-plural").stdout.splitlines()
    assert [line.split()[0] for line in alias] == [line.split()[0] for line in plural]
    assert alias[0].startswith("tenant cli-alias (") and alias[1].startswith("api key sk_")
    listed = yaml.safe_load(run(cluster, "tenant", "ls", "-o", "yaml").stdout)
    assert {"cli-shop", "cli-alias", "cli-plural"} <= {t["name"] for t in listed}

    key = as_json(cluster, "keys", "create", "cli-shop")  # by name or by id
    listed = as_json(cluster, "keys", "ls", made["id"])
    assert {key["id"]} < {k["id"] for k in listed}

    # A profile, chosen by --profile, beats the environment's key and URL.
    Path(cluster.env["SLUICE_CONFIG"]).write_text(
        f'[shop]\nurl = "{cluster.url}"\napi_key = "{key["api_key"]}"\n'
    )
    elsewhere = {"SLUICE_URL": "http://127.0.0.1:9", "SLUICE_API_KEY": "sk_other"}
    assert as_json(cluster, "tasks", "ls", "--profile", "shop") == []  # the new tenant's
    run(cluster, "tasks", "ls", code=0, env={**elsewhere, "SLUICE_PROFILE": "shop"})
    run(cluster, "tasks", "ls", "--profile", "absent", code=2)

    run(cluster, "keys", "revoke", "cli-shop", key["id"])
    revoked = {k["id"]: k["revoked_at"] for k in as_json(cluster, "keys", "ls", "cli-shop")}
    assert revoked[key["id"]] is not None
    denied = sluice(cluster, "tasks", "ls", "--profile", "shop", code=1)
    assert "401" in denied.stderr
    run(cluster, "keys", "revoke", "cli-shop", "no-such-key", code=3)


def test_schedules_are_set_listed_paused_resumed_changed_and_deleted(cluster: Cluster) -> None:
    made = as_json(cluster, "schedules", "set", "cli-nightly", "--function", "multiply",
                   "--cron", "0 3 * * *", "--timezone", "Europe/Berlin", "--args", "[6, 7]",
                   "--tag", "cron", "--catchup", "latest", "--max-catchup", "60")  # fmt: skip
    assert (made["function"], made["cron"], made["timezone"]) == ("multiply", "0 3 * * *",
                                                                  "Europe/Berlin")  # fmt: skip
    assert (made["args"], made["tags"], made["catchup"], made["max_catchup_s"]) == (
        [6, 7], ["cron"], "latest", 60)  # fmt: skip
    assert made["next_fire_at"] is not None and not made["paused"]
    assert [s["name"] for s in as_json(cluster, "schedules", "ls")] == ["cli-nightly"]
    table = run(cluster, "schedules", "ls").stdout
    assert "cli-nightly" in table
    as_json(cluster, "schedules", "set", "cli-seconds", "--function", "multiply",
            "--cron", "*/15 * * * * *", "--args", "[1, 2]")  # fmt: skip
    rows = run(cluster, "schedules", "ls", env={"COLUMNS": "40"}).stdout.splitlines()
    assert len(rows) == 3 and "*/15 * * * * *" in rows[2]  # a pipe: one row a line, whole
    assert yaml.safe_load(run(cluster, "schedules", "get", "cli-seconds", "-o", "yaml").stdout)[
        "cron"] == "*/15 * * * * *"  # fmt: skip
    as_json(cluster, "schedules", "delete", "cli-seconds")

    assert as_json(cluster, "schedules", "pause", "cli-nightly")["paused"] is True
    assert as_json(cluster, "schedules", "get", "cli-nightly")["paused"] is True
    assert as_json(cluster, "schedules", "resume", "cli-nightly")["paused"] is False
    # set changes only the options given; the rest keep their value
    changed = as_json(cluster, "schedules", "set", "cli-nightly", "--cron", "30 4 * * *")
    assert (changed["cron"], changed["args"], changed["timezone"]) == ("30 4 * * *", [6, 7],
                                                                       "Europe/Berlin")  # fmt: skip

    run(cluster, "schedules", "set", "cli-new", "--cron", "* * * * *", code=2)  # no --function
    run(cluster, "schedules", "set", "cli-nightly", "--args", "{}", code=2)  # not an array
    run(cluster, "schedules", "set", "cli-nightly", "--catchup", "some", code=2)
    bad = run(cluster, "schedules", "set", "cli-nightly", "--cron", "not cron", code=1)
    assert "400 invalid_request (cron)" in bad.stderr
    run(cluster, "schedules", "set", "cli-x", "--function", "nope", "--cron", "0 * * * *", code=3)

    assert as_json(cluster, "schedules", "delete", "cli-nightly") == {
        "name": "cli-nightly", "state": "deleted"}  # fmt: skip
    assert as_json(cluster, "schedules", "ls") == []
    run(cluster, "schedules", "get", "cli-nightly", code=3)
    run(cluster, "schedules", "delete", "cli-nightly", code=3)


def test_pause_holds_by_selector_and_resume_releases_with_exit_codes(cluster: Cluster) -> None:
    before = as_json(cluster, "submit", "multiply", "--args", "[2, 3]", "--delay", "300",
                     "--tag", "cli-pause")  # fmt: skip
    made = as_json(cluster, "pause", "--tag", "cli-pause", "--priority-min", "0")
    assert (made["selector"], made["held"]) == ({"tags": ["cli-pause"], "priority_min": 0}, 1)
    try:
        held = run(cluster, "submit", "multiply", "--args", "[6, 7]", "--tag", "cli-pause")
        held_id, state = held.stdout.split()
        assert state == "paused"
        assert {t["state"] for t in as_json(cluster, "tasks", "ls", "--tag", "cli-pause")} == {
            "paused"}  # fmt: skip
        assert len(as_json(cluster, "tasks", "ls", "--state", "paused", "--tag", "cli-pause")) == 2
        assert as_json(cluster, "pauses", "ls") == [{**made, "held": None}]
        assert made["id"] in run(cluster, "pauses", "ls").stdout
    finally:
        lifted = as_json(cluster, "resume", made["id"])
    assert lifted == {"id": made["id"], "released": 2}
    assert as_json(cluster, "tasks", "get", before["id"])["state"] == "scheduled"  # not due
    wait_for_sync(lambda: as_json(cluster, "tasks", "get", held_id)["state"] == "succeeded",
                  timeout=20)  # fmt: skip
    assert as_json(cluster, "pauses", "ls") == []

    table = run(cluster, "pause", "--function", "resize", "--function", "nothing").stdout
    pause_id = table.split()[0]
    assert "held 0" in table and "resize,nothing" in table
    assert "released 0" in run(cluster, "resume", pause_id).stdout

    gone = run(cluster, "resume", pause_id, "-o", "json", code=3)
    assert json.loads(gone.stderr)["error"]["code"] == "pause_not_found"
    run(cluster, "pause", code=2)  # no selector: never "pause everything"
    bad = run(cluster, "pause", "--priority-max", "12", code=1)
    assert "400 invalid_request (selector.priority_max)" in bad.stderr
    assert as_json(cluster, "pauses", "ls") == []


def test_logs_prints_a_tasks_lines_and_follows_a_running_one(cluster: Cluster) -> None:
    submitted = sluice(cluster, "submit", "chatty", "--args", "[2]", "--wait", "20", "--json")
    task_id = json.loads(submitted.stdout)["id"]
    shown = run(cluster, "logs", task_id).stdout.splitlines()
    assert len(shown) == 3
    assert "WARNING  [attempt 1] workload: line 0" in shown[0]
    assert shown[2].endswith("stdout: printed\\x1b[31m red")
    as_lines = [
        json.loads(line) for line in run(cluster, "logs", task_id, "-o", "json").stdout.splitlines()
    ]
    assert [line["seq"] for line in as_lines] == [0, 1, 2]
    assert run(cluster, "logs", task_id, "--grep", "LINE 1").stdout.count("\n") == 1
    followed = run(cluster, "logs", task_id, "--follow", "--level", "warning").stdout
    assert followed.count("\n") == 2  # an ended task: its lines, then the command returns
    run(cluster, "logs", "no-such-task", code=3)


def test_an_operators_setting_is_named_by_get_and_reset_returns_the_codes_value(
    cluster: Cluster,
) -> None:
    code = as_json(cluster, "functions", "get", "multiply")
    changed = as_json(cluster, "functions", "set", "multiply", "--timeout", "60")
    assert changed["timeout_s"] == 60
    assert "set by the operator (reset undoes it): timeout_s" in run(
        cluster, "functions", "get", "multiply"
    ).stdout.replace("\n", " ")
    reset = as_json(cluster, "functions", "reset", "multiply", "timeout_s")
    assert reset["timeout_s"] == code["timeout_s"] and reset["sources"]["timeout_s"] == "code"
    run(cluster, "functions", "reset", "multiply", "colour", code=1)


class _Hooks(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: records each delivery; answers `statuses[path]` (popped
    while more than one is left)."""

    got: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []
    statuses: ClassVar[dict[str, list[int]]] = {}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.got.append((self.path, dict(self.headers.items()), body))
        answers = self.statuses.setdefault(self.path, [200])
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok" if status < 300 else b"no")

    def log_message(self, *args: Any) -> None:
        pass


def test_webhooks_per_task_their_tries_and_re_enabling_a_receiver(cluster: Cluster) -> None:
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    _Hooks.statuses.update({"/flaky": [500, 200], "/gone": [410, 200]})
    try:
        assert as_json(cluster, "webhooks", "secret")["keys"] == 0
        secret = run(cluster, "webhooks", "rotate-secret").stdout.strip()
        assert secret.startswith("whsec_")
        assert "1 signing keys" in run(cluster, "webhooks", "secret").stdout

        submitted = sluice(cluster, "submit", "multiply", "--args", "[6, 7]",
                           "--webhook", f"{base}/flaky,succeeded", "--json")  # fmt: skip
        task = json.loads(submitted.stdout)["id"]
        wait_for_sync(lambda: len([g for g in _Hooks.got if g[0] == "/flaky"]) >= 2, timeout=20)
        _, headers, body = _Hooks.got[-1]
        sent = sluice_client.verify_webhook(secret, headers, body)
        assert (sent["data"]["task_id"], sent["data"]["result"]) == (task, 42)
        [delivery] = wait_for_sync(lambda: _delivered(cluster, task), timeout=20)
        assert [t["status"] for t in delivery["log"]] == [500, 200]
        assert [t["answer"] for t in delivery["log"]] == ["no", "ok"]
        table = run(cluster, "notifications", task).stdout
        assert "500" in table and "200" in table and delivery["id"] in table
        shown = yaml.safe_load(run(cluster, "notifications", task, "-o", "yaml").stdout)
        assert shown[0]["log"][0]["status"] == 500

        # 410 Gone disables the receiver at once; what it missed waits, then goes.
        gone = f"{base}/gone"
        run(cluster, "submit", "multiply", "--args", "[2, 3]", "--webhook", gone)
        [listed] = wait_for_sync(
            lambda: [w for w in as_json(cluster, "webhooks", "list")
                     if w["url"] == gone and not w["enabled"]],
            timeout=20,
        )  # fmt: skip
        assert listed["retrying"] == 1 and "410" in listed["reason"]
        assert gone in run(cluster, "webhooks", "ls").stdout
        assert "disabled" in run(cluster, "webhooks", "ls").stdout
        assert as_json(cluster, "webhooks", "enable", gone)["enabled"] is True
        wait_for_sync(lambda: [g for g in _Hooks.got if g[0] == "/gone"][1:], timeout=20)
        run(cluster, "webhooks", "enable", "http://127.0.0.1:9/none", code=3)

        bad = run(cluster, "submit", "multiply", "--webhook", f"{base}/x,finished", code=1)
        assert "400" in bad.stderr
        run(cluster, "submit", "multiply", "--webhook", ",succeeded", code=2)
    finally:
        receiver.shutdown()
        receiver.server_close()


def _delivered(cluster: Cluster, task_id: str) -> list[Any]:
    return [d for d in as_json(cluster, "notifications", task_id) if d["state"] == "delivered"]


def test_migrate_tells_the_schema_version_as_text_json_or_yaml(tmp_path: Path) -> None:
    env = {"SLUICE_DATABASE": f"sqlite:///{tmp_path / 'fresh.db'}"}
    text = CliRunner().invoke(cli, ["migrate"], env=env)
    assert text.exit_code == 0, text.output
    version = int(text.stdout.rsplit("schema version", 1)[1])
    assert version >= 1
    for output, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
        done = CliRunner().invoke(cli, ["migrate", "--output", output], env=env)
        assert done.exit_code == 0, done.output
        assert parse(done.stdout) == {"database": env["SLUICE_DATABASE"], "version": version}


def test_a_database_not_reached_is_named_in_one_line_without_its_password() -> None:
    url = f"postgresql://sluice:hunter2@127.0.0.1:{free_port()}/sluice"  # nothing listens
    for args in (["migrate"], ["tenants", "create", "acme"]):
        done = CliRunner().invoke(cli, [*args, "--database", url])
        assert done.exit_code == 4, (args, done.output, done.exception)
        assert done.stderr.startswith("error: cannot reach the database postgresql://sluice:***@")
        assert "check SLUICE_DATABASE or --database" in done.stderr
        assert "hunter2" not in done.output and "Traceback" not in done.output


def test_a_database_that_refuses_is_named_in_one_line() -> None:
    asyncio.run(pg.require_postgres())
    url = pg.dsn("sluice_no_such_database")
    for args in (["migrate"], ["tenants", "create", "acme"]):
        done = CliRunner().invoke(cli, [*args, "--database", url])
        assert done.exit_code == 1, (args, done.output, done.exception)
        assert done.stderr.startswith(f"error: the database refused {url}: database ")
        assert "Traceback" not in done.output
