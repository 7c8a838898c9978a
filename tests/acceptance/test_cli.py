"""The CLI against a real server and worker: what a person or a script would type."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.test_processes import SLUICE, Cluster

pytestmark = pytest.mark.acceptance


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path)
    try:
        running.server()
        running.worker(concurrency=2)
        yield running
    finally:
        running.stop()


def sluice(cluster: Cluster, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*SLUICE, *args], env=cluster.env, cwd=cluster.tmp, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def test_submit_wait_list_show_cancel_and_dead_letters_from_the_command_line(
    cluster: Cluster,
) -> None:
    answer = json.loads(
        sluice(cluster, "submit", "multiply", "--args", "[6, 7]", "--wait", "20", "--json").stdout
    )
    assert (answer["state"], answer["result"]) == ("succeeded", 42)

    later = sluice(cluster, "submit", "multiply", "--args", "[1, 1]", "--delay", "300",
                   "--tag", "later").stdout.split()  # fmt: skip
    assert later[1] == "scheduled"
    listed = json.loads(sluice(cluster, "tasks", "--tag", "later", "--json").stdout)
    assert [t["id"] for t in listed] == [later[0]]
    assert "cancelled 1" in sluice(cluster, "cancel", "--tag", "later").stdout
    shown = sluice(cluster, "show", later[0]).stdout
    assert "cancelled" in shown

    unknown = sluice(cluster, "submit", "nope", ok=False)
    assert unknown.returncode == 1
    assert "404 unknown_function (function)" in unknown.stderr
    assert json.loads(sluice(cluster, "dlq", "--json").stdout) == []

    missing = sluice(cluster, "show", "no-such-task", ok=False)
    assert missing.returncode == 1
    assert "404 task_not_found" in missing.stderr
    bad = sluice(cluster, "submit", "multiply", "--args", "not json", ok=False)
    assert bad.returncode == 2
