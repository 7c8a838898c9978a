"""Eager starts (sluice/eager.py): a coroutine runs at once up to its first real wait,
and only one that waits becomes a task, which goes on from where it stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

import pytest

from sluice import eager

T = TypeVar("T")


async def test_a_coroutine_that_never_waits_is_done_before_start_returns() -> None:
    ran: list[str] = []

    async def write() -> None:
        ran.append("written")

    assert eager.start(write()) is None
    assert ran == ["written"]


async def test_one_that_waits_goes_on_in_a_task_with_its_value() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def write() -> int:
        steps.append("before")
        got = await gate
        steps.append("after")
        return got + 1

    task = eager.start(write())
    assert task is not None and steps == ["before"]
    gate.set_result(41)
    assert await task == 42
    assert steps == ["before", "after"]


async def test_a_bare_yield_resumes_on_the_next_turn() -> None:
    async def twice() -> str:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "done"

    task = eager.start(twice())
    assert task is not None
    assert await task == "done"


async def test_errors_before_the_first_wait_raise_at_start_and_after_it_in_the_task() -> None:
    async def early() -> None:
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        eager.start(early())

    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def late() -> None:
        await gate
        raise ConnectionResetError("gone later")

    task = eager.start(late())
    assert task is not None
    gate.set_result(None)
    with pytest.raises(ConnectionResetError, match="later"):
        await task

    failing: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def reads() -> str:
        try:
            await failing
        except KeyError:
            return "the coroutine read its future's error"
        return "no error"

    task = eager.start(reads())
    assert task is not None
    failing.set_exception(KeyError("k"))
    assert await task == "the coroutine read its future's error"


@pytest.mark.parametrize("began", [True, False], ids=["task-waiting", "before-its-first-step"])
async def test_a_cancel_reaches_the_coroutine_where_it_waits(began: bool) -> None:
    """Whether the task had taken over (it waits) or was cancelled in the same turn it
    was made (it never ran a step of its own), the coroutine gets the cancel where it
    waits, and its future is cancelled."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []

    async def held() -> None:
        try:
            await gate
        finally:
            cleaned.append("finally")

    task = eager.start(held())
    assert task is not None
    if began:
        await asyncio.sleep(0)  # the task is waiting
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]
    assert gate.cancelled()  # as a task cancels the future it waits on


async def test_what_it_sets_in_context_variables_stays_its_own() -> None:
    """A worker routes log lines by a context variable set inside each task's coroutine:
    run eagerly, the coroutine must not set it in its caller's context."""
    import contextvars

    current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="caller")
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def task() -> None:
        current.set("task")
        seen.append(current.get())
        await gate
        seen.append(current.get())  # after its wait, in the task that goes on

    pending = eager.start(task())
    assert current.get() == "caller"
    assert pending is not None
    gate.set_result(None)
    await pending
    assert seen == ["task", "task"] and current.get() == "caller"


async def test_a_coroutine_that_catches_the_cancel_goes_on_waiting() -> None:
    """As with a task's own coroutine: a cancel it swallows leaves it running, and the
    task ends with what it returns."""
    first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    second: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def stubborn() -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await first
        return await second

    task = eager.start(stubborn())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not task.done()
    second.set_result("finished after the cancel")
    assert await task == "finished after the cancel"


async def test_one_cancelled_before_it_began_that_waits_again_is_closed() -> None:
    """A coroutine that catches that early cancel and waits again has no task to go on
    in: it is closed, its `finally` runs, and nothing is raised to the loop."""
    first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    second: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def stubborn() -> None:
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await first
            steps.append("caught")
            await second
        finally:
            steps.append("finally")

    task = eager.start(stubborn())
    assert task is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["caught", "finally"]
    assert first.cancelled() and not second.done()


async def outside_a_task(make: Callable[[], T]) -> T:
    """`make()` run from a callback of the loop, where no task is current (as a
    protocol's `data_received` is)."""
    made: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(lambda: made.set_result(make()))
    return await made


async def test_task_runs_its_first_step_now_inside_the_task() -> None:
    steps: list[object] = []

    async def submit() -> int:
        steps.append(asyncio.current_task())
        return 7

    task, then = await outside_a_task(lambda: (eager.task(submit()), list(steps)))
    assert then == [task]  # ran before task() returned, with the task current
    assert await task == 7


async def test_task_a_timeout_entered_before_the_first_wait_times_out_its_own_task() -> None:
    """asyncpg's connect enters `asyncio.timeout` before its first wait: with no task
    current that raises RuntimeError, and with the caller's it would cancel the caller."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def connect() -> str:
        try:
            async with asyncio.timeout(0.05):
                await gate
        except TimeoutError:
            return "timed out"
        return "connected"

    task = await outside_a_task(lambda: eager.task(connect()))
    assert await asyncio.wait_for(task, 5) == "timed out"
    assert gate.cancelled()


async def test_task_an_error_before_the_first_wait_is_the_tasks() -> None:
    async def submit() -> None:
        raise ValueError("refused")

    task = await outside_a_task(lambda: eager.task(submit()))
    with pytest.raises(ValueError, match="refused"):
        await task


@pytest.mark.parametrize("began", [False, True])
async def test_task_a_cancel_reaches_the_coroutine_where_it_waits(began: bool) -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def submit() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    def start() -> asyncio.Task[None]:
        task = eager.task(submit())
        if not began:  # in the same turn: before the task's own first step
            task.cancel()
        return task

    task = await outside_a_task(start)
    if began:
        await asyncio.sleep(0)  # the task's first step: it took over the wait
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"] and gate.cancelled()


async def test_task_that_catches_a_cancel_before_its_first_step_goes_on_inside_it() -> None:
    """As in a task of its own: the cancel reaches the coroutine where it waits, inside
    the task, which may handle it and return a value."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    inside: list[object] = []

    async def submit() -> str:
        try:
            await gate
        except asyncio.CancelledError:
            inside.append(asyncio.current_task())
            return "went on"
        return "waited"

    def start() -> asyncio.Task[str]:
        task = eager.task(submit())
        task.cancel()
        return task

    task = await outside_a_task(start)
    assert await task == "went on"
    assert inside == [task]


async def test_task_inside_a_task_is_a_plain_task() -> None:
    steps: list[str] = []

    async def submit() -> str:
        steps.append("ran")
        return "done"

    task = eager.task(submit())  # this test's own task is current
    assert await task == "done" and steps == ["ran"]
