"""What counting costs the hot path: engine/meters.py per task, for a submit, a dispatch
and an attempt's end, in one batch of 1,000 and in batches of 4 (best of 30 runs).

    .venv/bin/python -m bench.meters
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sluice.clock import FakeClock
from sluice.engine.meters import Meters
from sluice.model import ClaimedTask, Finish, NewTask, SubmitResult
from sluice.store import ACCEPTED

N = 1000
RUNS = 30


@dataclass
class _Runtime:
    clock: FakeClock


def per_task(run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(RUNS):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best / N


def main() -> None:
    clock = FakeClock()
    meters = Meters(_Runtime(clock))  # type: ignore[arg-type]  # the meters use only its clock
    now = clock.now()
    tasks = [ClaimedTask("t", str(i), "send", b"{}", 1, 3, None, 5, now - 0.01, now, 0.0)
             for i in range(N)]  # fmt: skip
    finishes = [Finish("t", str(i), 1, "w", "succeeded", "succeeded", 0.0, 1.0, 1.02)
                for i in range(N)]  # fmt: skip
    results = [SubmitResult(str(i), True, "ready", 0.0) for i in range(N)]
    new = [NewTask(str(i), "send", b"{}", "ready", 5, 0.0, 0.0, 3) for i in range(N)]
    accepted = [ACCEPTED] * N
    fours = range(0, N, 4)
    cases: dict[str, Callable[[], object]] = {
        "submit, batch of 1,000": lambda: meters.submits("t", results, new),
        "dispatch, batch of 1,000": lambda: meters.dispatched([tasks]),
        "end, batch of 1,000": lambda: meters.attempts_ended(finishes, accepted, list(tasks)),
        "dispatch, batches of 4": lambda: meters.dispatched([tasks[i : i + 4] for i in fours]),
        "end, batches of 4": lambda: [
            meters.attempts_ended(finishes[i : i + 4], accepted[i : i + 4], list(tasks[i : i + 4]))
            for i in fours
        ],
    }
    for name, run in cases.items():
        print(f"{name}: {per_task(run) * 1e9:.0f} ns per task")


if __name__ == "__main__":
    main()
