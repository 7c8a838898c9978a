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
import functools
import logging
from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("sluice")


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
    relay: _Relay[T] = _Relay(steps, waited)
    task = asyncio.get_running_loop().create_task(_rest(relay), context=context)
    task.add_done_callback(functools.partial(_unstarted, relay, context))
    return task


async def _rest(relay: _Relay[T]) -> T:
    return await relay


def _unstarted(relay: _Relay[Any], context: contextvars.Context, task: asyncio.Task[Any]) -> None:
    """A task cancelled before its first step never enters `_rest`, so its cancel would
    not reach the coroutine (left waiting until the garbage collector closes it): give
    it the cancel now, as a task gives its own coroutine, and the future it waits on.
    Its clean-up then runs here, outside any task (no `asyncio.timeout` in it), and one
    that waits again is closed: the callers' clean-ups (a write, a task's start) do not."""
    if relay.entered or not task.cancelled():
        return
    if isinstance(relay.waited, asyncio.Future):
        relay.waited.cancel()
    try:
        context.run(relay.steps.throw, asyncio.CancelledError())
    except (StopIteration, asyncio.CancelledError):
        return
    except Exception:
        log.exception("a coroutine cancelled before its task began failed")
        return
    try:  # it caught the cancel and waits again, with no task to go on in
        context.run(relay.steps.close)
    except Exception:
        log.exception("a coroutine cancelled before its task began failed to close")


class _Relay(Generic[T]):
    """The coroutine's remaining steps under a task: what it yields (the future it
    awaits, or None for a bare yield) goes to the task as it is, and what the task sends
    or throws back (the wake-up, the future's error, a cancel) goes to the coroutine, so
    the task treats it as its own coroutine (a cancel cancels the future it awaits)."""

    def __init__(self, steps: Generator[Any, Any, T], waited: Any) -> None:
        self.steps = steps
        self.waited = waited
        self.entered = False  # the task took over (see _unstarted)

    def __await__(self) -> Generator[Any, Any, T]:
        self.entered = True
        steps, waited = self.steps, self.waited
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
