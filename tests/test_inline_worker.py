"""Plain functions whose calls are shorter than a thread hand-off run on the worker's
event loop; one slow call sends them back to threads; their logs are still their own.

Deliveries are made as the server would send them, with no connection (like
tests/test_prefetch_worker.py); end to end, every other worker test runs plain
functions through the same path."""

from __future__ import annotations

import logging
import threading
import time

import msgspec

import sluice
from sluice.policy.inline import PROMOTE_AFTER, Inline
from sluice.protocol import TaskFrame
from sluice.worker import capture
from sluice.worker.runtime import Worker
from tests.harness import wait_for

app = sluice.App("inline")
threads: list[int] = []
slow = threading.Event()


@app.task
def quick(i: int) -> int:
    threads.append(threading.get_ident())
    logging.getLogger("quick").warning("call %d", i)
    if slow.is_set():
        time.sleep(0.01)
    return i


def frame(n: int) -> TaskFrame:
    payload = msgspec.json.encode({"args": [n], "kwargs": {}})
    return TaskFrame(f"t{n:04d}", "quick", 1, msgspec.Raw(payload))


async def run(w: Worker, first: int, count: int) -> None:
    for n in range(first, first + count):  # one at a time, as calls of one slot
        w._start(frame(n))
        await wait_for(lambda n=n: w.completed == n + 1)


async def test_short_calls_move_to_the_loop_and_a_slow_one_sends_them_back() -> None:
    threads.clear()
    slow.clear()
    loop_thread = threading.get_ident()
    capture.install()  # as Worker.run does
    w = Worker(app, url="http://127.0.0.1:9", api_key="k", concurrency=2)
    w._limits = msgspec.structs.replace(w._limits, max_log_bytes=65536)
    # Thresholds this test controls (the policy's own are tested in
    # tests/policy/test_inline.py): every call here counts as short, none as slow.
    calls = w._inline["quick"] = Inline(below_s=0.05, wall_s=1.0, slow_s=1.0)
    await run(w, 0, PROMOTE_AFTER)
    assert loop_thread not in threads  # proved short in threads first
    n = PROMOTE_AFTER
    while not calls.inline:  # a call slowed by this machine does not count
        assert n < 10 * PROMOTE_AFTER, "never moved to the loop"
        await run(w, n, 1)
        n += 1
    await run(w, n, 20)
    assert threads[-20:] == [loop_thread] * 20
    # Each inline call's log lines are its own attempt's.
    item = w._pending[-1]
    assert [line.message for line in item.logs] == [f"call {n + 19}"]
    assert all(r.outcome == "ok" for r in w._pending)

    calls.slow_s = 0.005
    slow.set()  # one slow inline call: back to threads for good
    await run(w, n + 20, 1)
    assert threads[-1] == loop_thread
    slow.clear()
    await run(w, n + 21, PROMOTE_AFTER + 10)
    assert loop_thread not in threads[-(PROMOTE_AFTER + 10) :]


async def test_without_inline_short_every_call_is_in_a_thread() -> None:
    threads.clear()
    slow.clear()
    w = Worker(app, url="http://127.0.0.1:9", api_key="k", concurrency=2, inline_short=False)
    await run(w, 0, PROMOTE_AFTER + 10)
    assert threading.get_ident() not in threads


async def test_a_plain_function_with_a_free_slot_starts_within_the_delivery() -> None:
    """No turn of the loop between a delivery and a plain function's start (eager.start):
    on the loop, the call has run and ended when `_start` returns; in a thread, it has
    been handed over. Several started so in one frame keep their log lines apart."""
    threads.clear()
    slow.clear()
    loop_thread = threading.get_ident()
    capture.install()
    w = Worker(app, url="http://127.0.0.1:9", api_key="k", concurrency=4)
    w._limits = msgspec.structs.replace(w._limits, max_log_bytes=65536)
    w._inline["quick"] = Inline(below_s=0.05, wall_s=1.0, slow_s=1.0)
    n = 0
    while not w._inline["quick"].inline:  # prove it short in threads first
        assert n < 10 * PROMOTE_AFTER, "never moved to the loop"
        await run(w, n, 1)
        n += 1
    done = w.completed
    for k in range(3):  # one frame's tasks: each runs in full within its own _start
        w._start(frame(n + k))
        assert w.completed == done + k + 1 and threads[-1] == loop_thread
        assert f"t{n + k:04d}" not in w._running  # ended: nothing left to hold
    lines = {item.id: [line.message for line in item.logs] for item in w._pending[-3:]}
    assert lines == {f"t{n + k:04d}": [f"call {n + k}"] for k in range(3)}

    # With no free slot it waits as before: a task is held, the call has not run.
    w._slots_free._value = 0  # every slot taken
    w._start(frame(n + 3))
    assert w.completed == done + 3 and f"t{n + 3:04d}" in w._running
    w._slots_free.release()
    await wait_for(lambda: w.completed == done + 4)
