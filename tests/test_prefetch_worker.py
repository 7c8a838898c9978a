"""Tasks a worker holds ahead of its slots (prefetch): they start in delivery order as
slots free, a cancel ends one that never started, a drain hands them back unstarted,
and a window that shrinks gives back what it no longer covers.

These drive the worker's own scheduling directly (deliveries as the server would send
them, no connection): the end-to-end behaviour is in tests/integration/test_prefetch.py."""

from __future__ import annotations

import asyncio
import threading

import msgspec

import sluice
from sluice.protocol import TaskFrame
from sluice.worker.runtime import Worker
from tests.harness import wait_for

app = sluice.App("ahead")
order: list[int] = []
gate = threading.Event()


@app.task
def step(i: int) -> int:
    order.append(i)
    return i


@app.task
def hold() -> None:
    assert gate.wait(10)


def frame(function: str, *args: object, n: int) -> TaskFrame:
    payload = msgspec.json.encode({"args": list(args), "kwargs": {}})
    return TaskFrame(f"t{n:04d}", function, 1, msgspec.Raw(payload))


def worker(slots: int = 1) -> Worker:
    """A worker whose window stays open at 4 per slot (no-op tasks, a mean that holds),
    so what it holds is what the test delivered."""
    w = Worker(app, url="http://127.0.0.1:9", api_key="k", concurrency=slots,
               capture_logs=False)  # fmt: skip
    w._prefetch.ran(0.0001)
    w._prefetch.alpha = 0.0
    return w


async def test_held_tasks_start_in_delivery_order_as_the_slot_frees() -> None:
    order.clear()
    gate.clear()
    w = worker(slots=1)
    w._start(frame("hold", n=0))
    for i in range(1, 5):
        w._start(frame("step", i, n=i))
    await asyncio.sleep(0)  # every task's coroutine has begun
    assert list(w._queued) == [f"t{i:04d}" for i in range(1, 5)]
    assert order == []  # the slot is taken: nothing else started
    gate.set()
    await wait_for(lambda: w.completed == 5)
    assert order == [1, 2, 3, 4]
    assert not w._queued and not w._running
    assert {item.outcome for item in w._pending} == {"ok"}


async def test_a_cancel_ends_a_held_task_that_never_started() -> None:
    order.clear()
    gate.clear()
    w = worker(slots=1)
    w._start(frame("hold", n=0))
    w._start(frame("step", 1, n=1))
    await asyncio.sleep(0)
    _, task, ctx = w._running["t0001"]
    ctx._stop("cancelled")
    task.cancel()
    await wait_for(lambda: w.completed == 1)
    (item,) = w._pending
    assert (item.id, item.outcome) == ("t0001", "cancelled")
    assert "t0001" not in w._queued and "t0001" not in w._running
    gate.set()
    await wait_for(lambda: w.completed == 2)
    assert order == []  # the cancelled one never ran


async def test_a_drain_hands_back_held_tasks_at_once_and_lets_the_running_one_end() -> None:
    order.clear()
    gate.clear()
    w = worker(slots=1)
    w._start(frame("hold", n=0))
    for i in range(1, 4):
        w._start(frame("step", i, n=i))
    await asyncio.sleep(0)
    drain = asyncio.create_task(w.drain())
    await wait_for(lambda: not w._queued)
    assert set(w._running) == {"t0000"}  # the held ones left without a result
    assert w.completed == 0
    gate.set()
    await asyncio.wait_for(drain, 10)
    assert [item.id for item in w._pending] == ["t0000"]
    assert order == []


async def test_a_window_that_shrinks_gives_back_the_newest_held_tasks() -> None:
    order.clear()
    gate.clear()
    w = worker(slots=1)
    w._retune()
    assert w._ahead == 0  # idle: its slot is free when a task comes
    w._saturated = True  # a delivery filled its credit
    w._retune()
    assert w._ahead == 4
    w._start(frame("hold", n=0))
    for i in range(1, 5):
        w._start(frame("step", i, n=i))
    await asyncio.sleep(0)
    w._executing["t0000"] -= 1.0  # the held-up task has run for a second
    w._retune()
    assert w._ahead == 0
    await wait_for(lambda: not w._queued and len(w._running) == 1)
    gate.set()
    await wait_for(lambda: w.completed == 1)
    assert order == []  # given back, never run here


async def test_without_prefetch_no_window_opens() -> None:
    w = Worker(app, url="http://127.0.0.1:9", api_key="k", concurrency=2, prefetch=False)
    for _ in range(10):
        w._prefetch.ran(0.0001)
    w._retune()
    assert w._ahead == 0
