"""`sluice worker --processes N`: run N worker processes and keep them running.

Each child is a plain `sluice worker ... --processes 1`, started with `env` (the API key
travels there, never on a command line). SIGTERM and SIGINT are passed on so every child
drains; a child that dies unexpectedly is started again.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger("sluice.supervisor")

RESTART_DELAY_S = 0.5


def supervise(
    child_args: Sequence[str], processes: int, env: Mapping[str, str] | None = None
) -> int:
    command = [sys.executable, "-m", "sluice", *child_args]
    children = [subprocess.Popen(command, env=env) for _ in range(processes)]
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        alive = False
        for i, child in enumerate(children):
            code = child.poll()
            if code is None:
                alive = True
            elif not stopping:
                log.warning("worker process %d exited with %d; starting another", child.pid, code)
                time.sleep(RESTART_DELAY_S)
                children[i] = subprocess.Popen(command, env=env)
                alive = True
        if not alive:
            return 0
        time.sleep(0.2)
