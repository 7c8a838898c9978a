"""The context a handler runs in: which task, which attempt, whether it was cancelled."""

from __future__ import annotations

import contextvars
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..protocol import MAX_PROGRESS_MESSAGE

if TYPE_CHECKING:
    from .capture import AttemptLog


_making = threading.Lock()  # a context's Event is made once, whichever thread asks


@dataclass
class TaskContext:
    task_id: str
    attempt: int
    function: str
    timeout_s: float | None = None
    # Made by the first `wait` (most handlers never wait: a no-op's context would spend
    # a few µs of its worker's ~75 on an Event it never uses).
    _cancel: threading.Event | None = field(default=None, repr=False)
    stop_reason: str | None = None  # "cancelled", "timeout" or "released" (drain)
    _log: AttemptLog | None = field(default=None, repr=False)  # the attempt's captured lines
    # The latest progress (done, total, message) and whether it is not shipped yet: the
    # worker's progress loop takes it every PROGRESS_S (a plain assignment: thread-safe).
    _progress: tuple[float, float | None, str | None] | None = field(default=None, repr=False)
    _progress_new: bool = field(default=False, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled, timed out or handed back: a sync handler,
        which cannot be interrupted, should check it and return early."""
        return self.stop_reason is not None

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds` in a plain handler, waking at once if the task is
        cancelled, times out or is handed back; returns `cancelled`."""
        event = self._cancel
        if event is None:
            with _making:
                event = self._cancel
                if event is None:
                    event = self._cancel = threading.Event()
                    if self.stop_reason is not None:  # stopped before anyone waited
                        event.set()
        return event.wait(seconds)

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report how far the attempt got: `done` of `total` (both finite numbers >= 0;
        no total when it is not known), with an optional message of at most 200
        characters. Cheap enough for a tight loop: it only records the latest value,
        which the worker ships with its next progress frame (every 0.2 s) and the API
        shows as the task's `progress`."""
        done = _amount("done", done)
        if total is not None:
            total = _amount("total", total)
        if message is not None:
            if not isinstance(message, str):
                raise TypeError(f"progress message must be a str, not {type(message).__name__}")
            if len(message) > MAX_PROGRESS_MESSAGE:
                raise ValueError(
                    f"progress message is {len(message)} characters; at most {MAX_PROGRESS_MESSAGE}"
                )
        self._progress = (done, total, message)
        self._progress_new = True

    def _take_progress(self) -> tuple[float, float | None, str | None] | None:
        """The progress reported since the last call, if any."""
        if not self._progress_new:
            return None
        self._progress_new = False
        return self._progress

    def _stop(self, reason: str) -> None:
        self.stop_reason = reason
        with _making:  # a `wait` making its Event now sees the reason, or is woken here
            event = self._cancel
        if event is not None:
            event.set()


def _amount(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"progress {name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"progress {name} must be a finite number >= 0, not {value!r}")
    return float(value)


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "sluice_task", default=None
)


def current_task() -> TaskContext:
    """The running task's context; only valid inside a handler."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("current_task() is only available inside a task handler")
    return ctx
