"""A handler's TaskContext (sluice/worker/context.py): `cancelled` and `wait` see a stop
whichever comes first, the stop or the first wait (the Event is made by the first wait)."""

from __future__ import annotations

import threading
import time

from sluice.worker.context import TaskContext


def test_a_stop_before_any_wait_is_seen_at_once() -> None:
    ctx = TaskContext("t1", 1, "f")
    assert not ctx.cancelled
    ctx._stop("cancelled")
    assert ctx.cancelled
    began = time.monotonic()
    assert ctx.wait(5.0) is True
    assert time.monotonic() - began < 1.0


def test_a_stop_from_another_thread_wakes_a_waiting_handler() -> None:
    ctx = TaskContext("t1", 1, "f")
    woke: list[bool] = []
    handler = threading.Thread(target=lambda: woke.append(ctx.wait(30.0)))
    handler.start()
    deadline = time.monotonic() + 10
    while ctx._cancel is None:  # until the handler is in its wait
        assert time.monotonic() < deadline, "the handler never waited"
        time.sleep(0.001)
    ctx._stop("timeout")
    handler.join(10)
    assert woke == [True] and ctx.stop_reason == "timeout"


def test_a_wait_with_no_stop_times_out_false() -> None:
    assert TaskContext("t1", 1, "f").wait(0.01) is False
