"""The crash-safety harness (chaos/run.py), with a smaller load: the server is killed with
SIGKILL twice and workers three times while they work, and every check must pass."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pg

pytestmark = pytest.mark.acceptance
ROOT = Path(__file__).resolve().parents[2]

CHECKS = [
    "chaos happened",
    "acknowledged submits exist",
    "every task terminal",
    "every acknowledged task succeeded",
    "keyed: one task per key",
    "keyed: repeated submits return the first task",
    "keyed: exactly one successful attempt",
    "attempt rows 1..n, one success per succeeded task",
    "no run started after its task ended",
    "no attempt ran on two workers at once",
    "every recorded attempt has its run in a journal",
    "every run accounted for",
    "failures only on failing-once first attempts",
    "delayed tasks did not start early",
    "no errors logged by servers and workers",
]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kills_of_the_server_and_workers_lose_nothing_and_run_nothing_twice(backend: str) -> None:
    if backend == "postgres":
        asyncio.run(pg.require_postgres())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env["SLUICE_CHAOS_PG"] = pg.SERVER
    command = [
        sys.executable, "-m", "chaos.run", "--tasks", "1500", "--server-kills", "2",
        "--worker-kills", "3", "--window", "8", "--settle", "60", "--deadline", "90",
        "--backend", backend,
    ]  # fmt: skip
    harness = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # The harness bounds itself (--deadline); this only guards against a hang.
        printed, _ = harness.communicate(timeout=105)
    finally:
        if harness.poll() is None:
            harness.terminate()  # SIGTERM: it kills the server and workers it started
            harness.communicate(timeout=30)
    assert harness.returncode == 0, printed
    for name in CHECKS:
        assert f"PASS  {name}:" in printed, printed
    assert "FAIL" not in printed, printed
    assert "2 of 2 server kills, 3 of 3 worker kills" in printed, printed
    assert "RESULT: PASS" in printed, printed
