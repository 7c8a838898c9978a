"""`sluice worker --processes N` or `--autoscale MIN:MAX`: run worker processes and keep
them running.

Each child is a plain `sluice worker ... --processes 1`, started with `env` (the API key
travels there, never on a command line). SIGTERM and SIGINT are passed on so every child
drains; a child that dies unexpectedly is started again.

With `--autoscale` the number of children follows the server's scaling signal for the
functions the App serves (`GET /v1/scaling/default`, engine/scaling.py), read every
POLL_S; policy/autoscale.py decides (up at once, down after a quiet window). A child
that is no longer wanted gets SIGTERM: it takes no new tasks and finishes the ones it
runs (worker/runtime.py's drain), so scaling down never cuts a task.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

import httpx

from ..policy.autoscale import Autoscale

log = logging.getLogger("sluice.supervisor")

RESTART_DELAY_S = 0.5
POLL_S = 0.2  # how often the autoscaler reads the signal: a burst is seen within this
SIGNAL_TIMEOUT_S = 2.0


class Children:
    """The worker processes: `active` ones count; `draining` ones were asked to stop
    and are only waited for."""

    def __init__(self, child_args: Sequence[str], env: Mapping[str, str] | None) -> None:
        self._command = [sys.executable, "-m", "sluice", *child_args]
        self._env = env
        self.active: list[subprocess.Popen[bytes]] = []
        self.draining: list[subprocess.Popen[bytes]] = []
        self.stopping = False

    def start(self) -> None:
        self.active.append(subprocess.Popen(self._command, env=self._env))

    def retire(self) -> None:
        """Drain the newest child (the oldest is likeliest to be warm and busy)."""
        child = self.active.pop()
        child.send_signal(signal.SIGTERM)
        self.draining.append(child)

    def signal_all(self, signum: int) -> None:
        """The first stop signal drains the running children (the draining ones already
        are: a second signal would make them hand their tasks back); another is passed
        to every child, to hurry them."""
        targets = [*self.active, *self.draining] if self.stopping else self.active
        self.stopping = True
        for child in targets:
            if child.poll() is None:
                child.send_signal(signum)

    def reap(self) -> bool:
        """Forget drained children, start crashed ones again; False once all are gone."""
        self.draining = [c for c in self.draining if c.poll() is None]
        for i, child in enumerate(self.active):
            code = child.poll()
            if code is not None and not self.stopping:
                log.warning("worker process %d exited with %d; starting another", child.pid, code)
                time.sleep(RESTART_DELAY_S)
                self.active[i] = subprocess.Popen(self._command, env=self._env)
        if self.stopping:
            self.active = [c for c in self.active if c.poll() is None]
        return bool(self.active or self.draining)

    def on_signals(self) -> None:
        def forward(signum: int, _frame: object) -> None:
            self.signal_all(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)


def supervise(
    child_args: Sequence[str], processes: int, env: Mapping[str, str] | None = None
) -> int:
    children = Children(child_args, env)
    for _ in range(processes):
        children.start()
    children.on_signals()
    while children.reap():
        time.sleep(0.2)
    return 0


class Signal:
    """The server's scaling signal for some functions, read over HTTP (several server
    URLs, comma-separated: the next is tried when one fails)."""

    def __init__(
        self, urls: str, api_key: str, functions: Sequence[str], verify: object = True
    ) -> None:
        self._urls = [u.strip().rstrip("/") for u in urls.split(",") if u.strip()]
        self._http = httpx.Client(
            timeout=SIGNAL_TIMEOUT_S, verify=verify,  # type: ignore[arg-type]
            headers={"authorization": f"Bearer {api_key}"},
        )  # fmt: skip
        self._params = {"functions": list(functions)}

    def load(self) -> float:
        """The load now; raises httpx.HTTPError (or KeyError) when no server answers."""
        try:
            answer = self._http.get(f"{self._urls[0]}/v1/scaling/default", params=self._params)
            answer.raise_for_status()
        except httpx.HTTPError:
            self._urls.append(self._urls.pop(0))
            raise
        return float(answer.json()["load"])


def autoscale(
    child_args: Sequence[str], policy: Autoscale, signal_: Signal,
    env: Mapping[str, str] | None = None,
) -> int:  # fmt: skip
    children = Children(child_args, env)
    for _ in range(policy.minimum):
        children.start()
    children.on_signals()
    failing = False
    while children.reap() or not children.stopping:
        if not children.stopping:
            try:
                load = signal_.load()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                if not failing:  # said once per outage, not every poll
                    log.warning("the scaling signal is unavailable (%s); keeping %d processes",
                                exc, len(children.active))  # fmt: skip
                failing = True
            else:
                failing = False
                _follow(children, policy, load)
        time.sleep(POLL_S)
    return 0


def _follow(children: Children, policy: Autoscale, load: float) -> None:
    current = len(children.active)
    target = policy.decide(time.monotonic(), load, current)
    if target == current:
        return
    log.info("autoscale: %d -> %d processes (load %g)", current, target, load)
    while len(children.active) < target:
        children.start()
    while len(children.active) > target:
        children.retire()
