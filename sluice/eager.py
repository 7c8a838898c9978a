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
`asyncio.timeout` entered there would cancel the caller). Frames written to a worker's
websocket qualify (Litestar's and uvicorn's send never ask); a user's handler does not,
which is why the worker still starts each task as an asyncio task (Python 3.12's eager
tasks would do it properly).
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
    # variables (a worker's log capture, the current task) stays its own.
    context = contextvars.copy_context()
    steps = awaitable.__await__()
    try:
        waited = context.run(steps.send, None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_resume(steps, waited), context=context)


async def _resume(coro: Generator[Any, None, T], waited: Any) -> T:
    """What a task does for a coroutine (asyncio.Task.__step): wait for the future it
    yielded, then step it on; a cancel is passed into it, as a task passes it."""
    while True:
        try:
            if waited is None:  # a bare yield: it asked for one turn of the loop
                await asyncio.sleep(0)
            else:  # the future it awaits; its outcome is the coroutine's to read
                await asyncio.wait((waited,))
        except asyncio.CancelledError as exc:
            if isinstance(waited, asyncio.Future):
                waited.cancel()
            try:
                waited = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            continue
        try:
            waited = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
