"""Every shell and Python example in README.md and docs/ runs as written against
`sluice dev` with the example app (what `make run` starts), from `examples/`, with the
`export` lines `sluice dev` prints applied and the venv's `sluice` on PATH.

An example that cannot run here says why in an HTML comment on the line before its
fence, which the rendered page does not show:

    <!-- example: skip: a long-running server, shown for its options -->

Each example runs alone (its own shell or interpreter), in the order of the page, and
must exit 0 within its timeout; in a shell, `curl` fails on an HTTP error answer.

An example about running servers is marked with what it needs, and runs in a
directory of its own instead of against the dev server: `<!-- example: server -->`, one
`sluice server` on its default SQLite database; `<!-- example: postgres -->`, one on a
fresh, empty PostgreSQL database of its own (what `createdb` makes);
`<!-- example: cluster -->`, two nodes on one such database. What only the reader knows
has stand-ins: the test's database for the block's `postgresql://…` URL, the nodes'
URLs for its node URLs (`http://a:8420`, one node per host named), a free port for
`--port 8420` and the tenant's key for `sk_...`. A block that starts `sluice server` is a
node: it runs once per node, and passes when every node answers `/v1/health` and SIGTERM
then stops it with exit 0. Any other block runs against nodes the test starts (`sluice
migrate`, `sluice tenant create shop`, `sluice server`), with SLUICE_DATABASE, SLUICE_URL
(every node), SLUICE_API_KEY, SLUICE_ADMIN_KEY and SLUICE_POOL_KEY set as the docs set
them, and the example app's worker; a block that starts its own `sluice worker` instead
(a tenant's, a shared pool's, or one that autoscales from zero) passes when that worker
has run a task of the tenant's submitted to the last node, and stops with exit 0 on
SIGTERM. Without PostgreSQL the PostgreSQL ones skip with the reason; under CI=true
they fail (tests/pg.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

import sluice
from sluice.contract import SubmitOutcome
from tests import pg
from tests.acceptance.test_processes import ROOT, SLUICE
from tests.harness import free_port, wait_for_sync

# One dev server runs the examples in page order: every example on one xdist worker.
pytestmark = [pytest.mark.acceptance, pytest.mark.xdist_group("docs")]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"sh": "sh", "bash": "sh", "python": "python"}
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)
MARK = re.compile(r"<!-- example: (.*?) -->\s*$")
TIMEOUT_S = 60
# An HTTP error answer must fail the example too (curl alone exits 0 on a 404).
CURL = 'curl() { command curl --fail-with-body -sS "$@"; }\n'
NODES = {"server": 1, "postgres": 1, "cluster": 2}  # the marks that run servers: how many
POSTGRES = {"postgres", "cluster"}
DATABASE_URL = re.compile(r"postgresql://\S+")
NODE_URL = re.compile(r"https?://[\w.-]+:8420\b")
NODE_PORT = re.compile(r"--port 8420\b")
STOP_TIMEOUT_S = 45  # a worker drains, a server answers 503 for shutdown_delay_s first


class Example(NamedTuple):
    page: str
    line: int
    language: str
    code: str
    mark: str | None  # "skip: why", "postgres", "cluster", or None: it runs on dev


def examples() -> list[Example]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for fence in FENCE.finditer(text):
            if fence[1] not in LANGUAGES:
                continue
            before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mark = MARK.search(before)
            line = text[: fence.start()].count("\n") + 1
            name = page.relative_to(ROOT).as_posix()
            found.append(Example(name, line, LANGUAGES[fence[1]], fence[2],
                                 mark[1] if mark else None))  # fmt: skip
    return found


EXAMPLES = examples()


class Dev(NamedTuple):
    cwd: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    tmp = tmp_path_factory.mktemp("docs")
    cwd = _examples(tmp)
    port = free_port()
    env = _user_env(tmp)
    log = open(tmp / "dev.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([*SLUICE, "dev", "shop:app", "--port", str(port)], cwd=cwd,
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        dev_file = cwd / ".sluice" / "dev.json"
        wait_for_sync(dev_file.exists, timeout=30)
        saved = json.loads(dev_file.read_text())
        wait_for_sync(lambda: _workers(saved["url"]) >= 1, timeout=30)
        # What the export line `sluice dev` prints sets.
        env.update(SLUICE_URL=saved["url"], SLUICE_API_KEY=saved["api_key"],
                   SLUICE_ADMIN_KEY=saved["admin_key"])  # fmt: skip
        yield Dev(cwd, env)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


def _examples(tmp: Path) -> Path:
    """A copy of examples/ without what `make run` left there: where examples run."""
    shutil.copytree(ROOT / "examples", tmp / "examples", ignore=shutil.ignore_patterns(
        ".sluice", "outbox", "thumbnails", "__pycache__"))  # fmt: skip
    return tmp / "examples"


def _user_env(tmp: Path) -> dict[str, str]:
    """A reader's shell: no SLUICE_* of this machine's, the venv's `sluice` on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["PYTHONPATH"] = str(ROOT)
    env["SLUICE_CONFIG"] = str(tmp / "profiles.toml")  # no profile of the machine's
    # The venv's `sluice` first on PATH, as `source .venv/bin/activate` does.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _health(url: str) -> dict[str, object]:
    try:
        return dict(httpx.get(f"{url}/v1/health", timeout=2).json())
    except httpx.HTTPError:
        return {}


def _workers(url: str) -> int:
    return int(_health(url).get("workers", 0))  # type: ignore[call-overload]


def test_the_examples_run_on_one_test_worker(request: pytest.FixtureRequest) -> None:
    """Under `make test` (xdist, --dist loadgroup) the examples run in page order on one
    dev server only if their `xdist_group` holds; a pytest that xdist cannot group with
    would scatter them over two dev servers, and a block would miss what the block above
    it made (a pytest of that kind is excluded in pyproject.toml)."""
    if getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith("@docs"), request.node.nodeid


def test_every_example_that_does_not_run_says_why() -> None:
    assert len(EXAMPLES) > 30
    for example in EXAMPLES:
        if example.mark is not None and example.mark not in NODES:
            assert re.match(r"skip: \S.{8,}", example.mark), example[:2]
            assert "TODO" not in example.mark, example[:2]


def test_every_example_that_needs_postgresql_is_marked() -> None:
    assert len([e for e in EXAMPLES if e.mark in POSTGRES]) >= 3
    for example in EXAMPLES:
        if DATABASE_URL.search(example.code):
            assert example.mark in POSTGRES, example[:2]


@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if e.mark is None],
    ids=[f"{e.page}:{e.line}" for e in EXAMPLES if e.mark is None],
)
def test_the_example_runs_as_written(dev: Dev, example: Example) -> None:
    command = _command(example.language, example.code)
    # Its own process group: whatever the example starts is stopped with it, even a
    # server an example was wrongly left unmarked with.
    proc = subprocess.Popen(command, cwd=dev.cwd, env=dev.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, f"{example.page}:{example.line}\n{stdout[-3000:]}\n" \
        f"{stderr[-3000:]}"  # fmt: skip


def _command(language: str, code: str) -> list[str]:
    if language == "sh":
        return ["bash", "-euo", "pipefail", "-c", CURL + code]
    return [sys.executable, "-c", code]


# -- the examples that need PostgreSQL ---------------------------------------------------


class Processes:
    """What a PostgreSQL example starts, each in its own process group with its log."""

    def __init__(self, tmp: Path, cwd: Path) -> None:
        self.tmp, self.cwd = tmp, cwd
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.tmp / f"process-{len(self.started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(command, cwd=self.cwd, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # fmt: skip
        self.started.append((proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {' '.join(map(str, p.args))[-200:]}\n{log.read_text()[-2000:]}"
                         for p, log in self.started)  # fmt: skip

    def kill(self) -> None:
        for proc, _ in self.started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _stand_ins(
    code: str, database: str | None, urls: list[str], node: int, api_key: str | None = None
) -> str:
    """The block with the test's database, node URLs, node port and key in place of the
    reader's (DATABASE_URL, NODE_URL, NODE_PORT, `sk_...`)."""
    if database is not None:
        code = DATABASE_URL.sub(lambda _: database, code)
    if api_key is not None:
        code = code.replace("sk_...", api_key)
    hosts = list(dict.fromkeys(NODE_URL.findall(code)))
    assert len(hosts) <= len(urls), f"{hosts} name more nodes than the mark gives"
    code = NODE_URL.sub(lambda m: urls[hosts.index(m[0])], code)
    return NODE_PORT.sub(f"--port {urls[node].rsplit(':', 1)[1]}", code)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM what the block is running, as a service manager stops it: the shell's
    children (or the shell itself, when it exec'd its last command). The block's status."""
    if Path(f"/proc/{proc.pid}/comm").read_text().strip() == "bash":
        targets = [int(stat.name) for stat in Path("/proc").glob("[0-9]*")
                   if _parent(stat) == proc.pid]  # fmt: skip
    else:
        targets = [proc.pid]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return proc.wait(timeout=STOP_TIMEOUT_S)


def _parent(proc_dir: Path) -> int:
    try:
        stat = (proc_dir / "stat").read_text()
    except OSError:  # it ended meanwhile
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "(comm)": state, then ppid


@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if e.mark in NODES],
    ids=[f"{e.page}:{e.line}" for e in EXAMPLES if e.mark in NODES],
)
def test_the_server_example_runs_as_written(tmp_path: Path, example: Example) -> None:
    assert example.mark is not None
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(NODES[example.mark])]
    processes = Processes(tmp_path, _examples(tmp_path))
    env = _user_env(tmp_path)
    with contextlib.ExitStack() as stack:
        database = None  # `server`: the default SQLite database, in the block's directory
        if example.mark in POSTGRES:
            database = stack.enter_context(pg.fresh_database_sync(empty=True))
        try:
            if re.search(r"\bsluice server\b", example.code):
                _run_as_nodes(processes, env, example, database, urls)
            else:
                _run_against_nodes(processes, env, example, database, urls)
        finally:
            processes.kill()


def _run_as_nodes(processes: Processes, env: dict[str, str], example: Example,
                  database: str | None, urls: list[str]) -> None:  # fmt: skip
    blocks = [processes.start(_command(example.language, _stand_ins(
        example.code, database, urls, node)), env) for node in range(len(urls))]  # fmt: skip
    wait_for_sync(lambda: all(_health(url).get("status") == "ok" for url in urls)
                  or any(block.poll() is not None for block in blocks), timeout=60)  # fmt: skip
    assert all(block.poll() is None for block in blocks), processes.logs()
    assert [_stop(block) for block in blocks] == [0] * len(blocks), processes.logs()


def _run_against_nodes(processes: Processes, env: dict[str, str], example: Example,
                       database: str | None, urls: list[str]) -> None:  # fmt: skip
    env = {**env, **({"SLUICE_DATABASE": database} if database else {})}
    subprocess.run([*SLUICE, "migrate"], cwd=processes.cwd, env=env, check=True,
                   capture_output=True)  # fmt: skip
    # No admin key anywhere yet: the first tenant is written to the database directly.
    created = subprocess.run([*SLUICE, "tenant", "create", "shop", "-o", "json"],
                             cwd=processes.cwd, env=env, check=True,
                             capture_output=True)  # fmt: skip
    api_key = json.loads(created.stdout)["api_key"]
    env["SLUICE_ADMIN_KEY"] = "sa_" + secrets.token_urlsafe(24)
    env["SLUICE_POOL_KEY"] = "sp_" + secrets.token_urlsafe(24)
    for url in urls:
        processes.start([*SLUICE, "server", "--port", url.rsplit(":", 1)[1]], env)
    wait_for_sync(lambda: all(_health(url).get("status") == "ok" for url in urls), timeout=60)
    env.update(SLUICE_URL=",".join(urls), SLUICE_API_KEY=api_key)
    code = _stand_ins(example.code, database, urls, 0, api_key)
    if not re.search(r"\bsluice worker\b", code):
        processes.start([*SLUICE, "worker", "shop:app"], env)
        wait_for_sync(lambda: sum(map(_workers, urls)) == 1, timeout=30)
        block = processes.start(_command(example.language, code), env)
        assert block.wait(timeout=TIMEOUT_S) == 0, processes.logs()
        return
    # The block runs a worker: it must connect, serve, and drain on SIGTERM.
    block = processes.start(_command(example.language, code), env)
    with sluice.Client(urls[-1], api_key) as client:
        if re.search(r"--autoscale 0:", code):
            # It starts a process only for work, and work needs its function known: as a
            # worker of the app that ran before registers it.
            client.functions.set("ping", {}, code=True)
        submitted = wait_for_sync(lambda: _ping(client) or block.poll() is not None, timeout=30)
        assert block.poll() is None, processes.logs()
        assert client.wait(submitted.id, 30).state == "succeeded", processes.logs()
    assert _stop(block) == 0, processes.logs()


def _ping(client: sluice.Client) -> SubmitOutcome | None:
    """A task of `ping`, once a worker serving it has connected and registered it."""
    try:
        return client.submit({"function": "ping", "args": [time.time()]})
    except sluice.RemoteError as e:
        if e.code != "unknown_function":
            raise
        return None
