"""What `sluice dev` tells the person at the terminal about the tasks it runs: each
failed attempt and each death in one line (function, task id, attempt, error), and every
few seconds, under load, a summary of the attempts that ended.

It watches the attempts' ends through the meters (`Meters.watch`): one call per written
batch of finishes, which counts in plain Python and formats only failures, a few of
them per summary; the rest are counted as "more" (a flood of failures stays readable).
"""

from __future__ import annotations

import logging
from collections import Counter

from ..model import DEAD, SCHEDULED, SUCCEEDED, ClaimedTask, Finish
from ..store import ACCEPTED
from .runtime import Runtime

log = logging.getLogger("sluice.dev")

SUMMARY_S = 5.0  # how often the summary is printed, under load
SUMMARY_MIN = 10  # attempts ended in a period that make it load (or any failure unshown)
LINES_PER_SUMMARY = 20  # failure lines printed per summary period; the others are counted
ERROR_CHARS = 300  # an error message longer than this is cut (the whole is in `tasks get`)


class DevLog:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._ends: Counter[str] = Counter()  # succeeded, retried, dead: since the summary
        self._lines = 0  # failure lines printed since the summary
        self._unprinted = 0

    def attempts_ended(
        self, finishes: list[Finish], outcomes: list[str], tasks: list[ClaimedTask | None]
    ) -> None:
        """A batch of finishes written (the meters' watch)."""
        for f, outcome, task in zip(finishes, outcomes, tasks, strict=True):
            if outcome != ACCEPTED:
                continue
            if f.next_state == SUCCEEDED:
                self._ends["succeeded"] += 1
                continue
            self._ends["dead" if f.next_state == DEAD else "retried"] += 1
            if f.outcome == "cancelled":
                continue
            if self._lines >= LINES_PER_SUMMARY:
                self._unprinted += 1
                continue
            self._lines += 1
            self._failure(f, task)

    def _failure(self, f: Finish, task: ClaimedTask | None) -> None:
        function = task.function if task is not None else "?"
        of = f"/{task.max_attempts}" if task is not None else ""
        error = _error(f)
        if f.next_state == DEAD:
            log.error(
                "task dead: %s %s after attempt %d%s: %s (sluice tasks get %s)",
                function, f.task_id, f.attempt, of, error, f.task_id,
            )  # fmt: skip
            return
        retry = ""
        if f.next_state == SCHEDULED and f.run_at is not None:
            retry = f"; retry in {max(f.run_at - self._rt.clock.now(), 0.0):.1f} s"
        log.warning(
            "task failed: %s %s attempt %d%s: %s%s", function, f.task_id, f.attempt, of, error,
            retry,
        )  # fmt: skip

    def summarize(self) -> str | None:
        """The summary line of the attempts that ended since the last one (logged), or
        None when none did."""
        ends, more = self._ends, self._unprinted
        self._ends, self._lines, self._unprinted = Counter(), 0, 0
        if ends.total() < SUMMARY_MIN and not more:
            return None
        parts = [f"{ends[k]:,} {k}" for k in ("succeeded", "retried", "dead") if ends[k]]
        line = f"last {SUMMARY_S:g} s: " + ", ".join(parts)
        if more:
            line += f" ({more:,} failures not shown: sluice tasks ls --state dead)"
        log.info("%s", line)
        return line


def _error(f: Finish) -> str:
    if f.outcome == "timed_out":
        return "timed out"
    message = (f.error_message or "").strip().splitlines()
    text = f"{f.error_type}: {message[0] if message else ''}" if f.error_type else f.outcome
    if len(message) > 1:
        text += " …"
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"
