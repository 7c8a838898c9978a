"""The context a handler runs in: which task, which attempt, whether it was cancelled."""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .capture import AttemptLog


@dataclass
class TaskContext:
    task_id: str
    attempt: int
    function: str
    timeout_s: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    stop_reason: str | None = None  # "cancelled", "timeout" or "released" (drain)
    _log: AttemptLog | None = field(default=None, repr=False)  # the attempt's captured lines

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled, timed out or handed back: a sync handler,
        which cannot be interrupted, should check it and return early."""
        return self._cancel.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds` in a plain handler, waking at once if the task is
        cancelled, times out or is handed back; returns `cancelled`."""
        return self._cancel.wait(seconds)

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        self._cancel.set()


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "sluice_task", default=None
)


def current_task() -> TaskContext:
    """The running task's context; only valid inside a handler."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("current_task() is only available inside a task handler")
    return ctx
