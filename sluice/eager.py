"""Eager starts: a coroutine run now, up to its first real wait (Python 3.12's eager
task factory, by hand, for 3.11).

`asyncio.create_task` runs nothing until a later turn of the loop, after whatever the
loop has ready before it. A coroutine that usually finishes without waiting (a frame
written to a writable socket) still pays a task, a turn, and the wait behind the other
callbacks; on the submit→start path that turn sat between a task's commit and its push
to the worker. `start` runs the coroutine at once; only one that does wait becomes a
task, which goes on from where it stopped.

Only for coroutines that do not care which task runs them: until its first wait, the
coroutine runs in its caller's task (`asyncio.current_task()` is the caller's, so an
`asyncio.timeout` entered there would cancel the caller). A frame written to a worker's
websocket qualifies (Litestar's and uvicorn's send never ask), and so does a worker's
start of a plain function (the worker's own code around a call that runs no asyncio of
its own); an async handler does not, so the worker starts those as asyncio tasks
(Python 3.12's eager tasks would set the current task properly).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start(awaitable: Awaitable[T]) -> asyncio.Task[T] | None:
    """Run `awaitable` (a coroutine) until it finishes (None) or waits (the task that
    finishes it). An exception it raises before waiting is raised here."""
    # In a context of its own, as a task's coroutine runs: what it sets in context
    # variables (a worker's log capture, `sluice.current_task()`) stays its own.
    context = contextvars.copy_context()
    steps = awaitable.__await__()
    try:
        waited = context.run(steps.send, None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_rest(steps, waited), context=context)


async def _rest(steps: Generator[Any, Any, T], waited: Any) -> T:
    return await _Relay(steps, waited)


class _Relay:
    """The coroutine's remaining steps under a task: what it yields (the future it
    awaits, or None for a bare yield) goes to the task as it is, and what the task sends
    or throws back (the wake-up, the future's error, a cancel) goes to the coroutine, so
    the task treats it as its own coroutine (a cancel cancels the future it awaits)."""

    def __init__(self, steps: Generator[Any, Any, T], waited: Any) -> None:
        self._steps = steps
        self._waited = waited

    def __await__(self) -> Generator[Any, Any, T]:
        steps, waited = self._steps, self._waited
        while True:
            try:
                sent = yield waited
            except BaseException as exc:  # the coroutine's to handle (a cancel too)
                try:
                    waited = steps.throw(exc)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
            else:
                try:
                    waited = steps.send(sent)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
