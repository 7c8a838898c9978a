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

`task` is the other kind: a task whose first step runs now, inside it, as Python
3.12's eager tasks run (on 3.12 and later it is one of them). `asyncio.current_task()`
is that task from the first line, so an `asyncio.timeout` entered before the first wait
(asyncpg's `connect` enters one) cancels the right task. It always makes a task; it
saves the turn of the loop between the call and the coroutine's start. The submit
stream starts each frame's submit this way: on SQLite, a submit that commits inline is
answered before `data_received` returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Coroutine, Generator
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


# Python 3.12's own eager tasks; on 3.11 `task` makes them by hand, doing around the first
# step what a task's step does around each of its steps.
_eager_task_factory = getattr(asyncio, "eager_task_factory", None)
if _eager_task_factory is None:
    from asyncio.tasks import _enter_task, _leave_task


def task(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task for `coro` whose first step (up to its first real wait, or its end) runs
    now, inside the task. In a task already (whose step cannot be entered twice), a
    plain task."""
    loop = asyncio.get_running_loop()
    if _eager_task_factory is not None:
        return _eager_task_factory(loop, coro)  # type: ignore[no-any-return]
    if asyncio.current_task(loop) is not None:
        return loop.create_task(coro)
    first = _Begun(coro.__await__())
    made = loop.create_task(first, context=first.context)
    _enter_task(loop, made)
    try:
        first.begin()
    finally:
        _leave_task(loop, made)
    return made


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


class _Begun(Coroutine[Any, Any, T]):
    """A coroutine whose first step already ran (`task`), as its task's coroutine: the
    task's first step gets what that step waited for (or how it ended), and everything
    after goes to the coroutine, a cancel before that first step too, so it reaches the
    coroutine where it waits, inside the task, as in a task of its own."""

    def __init__(self, steps: Generator[Any, Any, T]) -> None:
        # In a context of its own, as a task's coroutine runs; the task runs in it too.
        self.context = contextvars.copy_context()
        self._steps = steps
        self._waited: Any = None
        self._ended: BaseException | None = None  # StopIteration with its value, or its error
        self._fresh = True  # the task's first step has not come yet

    def begin(self) -> None:
        try:
            self._waited = self.context.run(self._steps.send, None)
        except (KeyboardInterrupt, SystemExit) as exc:  # as 3.12's eager start: raised now
            self._ended = exc
            raise
        except BaseException as exc:  # its end or its error: the task's first step has it
            self._ended = exc

    def send(self, value: Any) -> Any:
        if self._fresh:
            self._fresh = False
            if self._ended is not None:
                raise self._ended
            return self._waited
        return self._steps.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:  # type: ignore[override]
        if self._fresh:  # cancelled before the task's first step
            self._fresh = False
            if self._ended is not None:  # it had ended: as a done task, the cancel is moot
                raise self._ended
            if isinstance(self._waited, asyncio.Future):
                self._waited.cancel()  # as a task cancels the future it waits on
        if val is None and tb is None:
            return self._steps.throw(typ)
        return self._steps.throw(typ, val, tb)  # pragma: no cover (the old signature)

    def close(self) -> None:
        self._steps.close()

    def __await__(self) -> Generator[Any, Any, T]:
        raise TypeError("a task's coroutine is not awaited")
