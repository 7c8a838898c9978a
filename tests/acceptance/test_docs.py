"""Every shell and Python example in README.md and docs/ runs as written against
`sluice dev` with the example app (what `make run` starts), from `examples/`, with the
`export` lines `sluice dev` prints applied and the venv's `sluice` on PATH.

An example that cannot run here says why in an HTML comment on the line before its
fence, which the rendered page does not show:

    <!-- example: skip: a long-running server, shown for its options -->

Each example runs alone (its own shell or interpreter), in the order of the page, and
must exit 0 within its timeout; in a shell, `curl` fails on an HTTP error answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

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


class Example(NamedTuple):
    page: str
    line: int
    language: str
    code: str
    mark: str | None  # "skip: why", or None: it runs


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
    shutil.copytree(ROOT / "examples", tmp / "examples", ignore=shutil.ignore_patterns(
        ".sluice", "outbox", "thumbnails", "__pycache__"))  # fmt: skip
    cwd = tmp / "examples"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["PYTHONPATH"] = str(ROOT)
    env["SLUICE_CONFIG"] = str(tmp / "profiles.toml")  # no profile of the machine's
    # The venv's `sluice` first on PATH, as `source .venv/bin/activate` does.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
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


def _workers(url: str) -> int:
    try:
        return int(httpx.get(f"{url}/v1/health", timeout=2).json()["workers"])
    except httpx.HTTPError:
        return 0


def test_every_example_that_does_not_run_says_why() -> None:
    assert len(EXAMPLES) > 30
    for example in EXAMPLES:
        if example.mark is not None:
            assert re.match(r"skip: \S.{8,}", example.mark), example[:2]


@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if e.mark is None],
    ids=[f"{e.page}:{e.line}" for e in EXAMPLES if e.mark is None],
)
def test_the_example_runs_as_written(dev: Dev, example: Example) -> None:
    if example.language == "sh":
        command = ["bash", "-euo", "pipefail", "-c", CURL + example.code]
    else:
        command = [sys.executable, "-c", example.code]
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
