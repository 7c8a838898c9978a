"""Injectable clocks: every engine loop reads the time and waits through one of these, so
a test can drive the loops with a fake clock (tests/engine/: a service built alone,
moved a step at a time).

`now()` is wall time (what the store records and compares); `monotonic()` measures
intervals; `sleep`, `wait_for` and `call_later` wait on the same clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (what the store records)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back: for intervals."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait_for(self, awaitable: Awaitable[T], timeout: float) -> T:
        """The awaitable's result, or TimeoutError after `timeout` seconds (cancelling it)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait_for(self, awaitable: Awaitable[T], timeout: float) -> T:
        return await asyncio.wait_for(awaitable, timeout)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


class FakeClock:
    """A clock that moves only when told to (`advance`): sleepers, timeouts and timers
    due by then run, in order; nothing waits for real time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._due: list[tuple[float, int, _FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time on; run, in time order, everything due by then."""
        until = self._mono + seconds
        while self._due and self._due[0][0] <= until:
            at, _, callback = heapq.heappop(self._due)
            self._now += at - self._mono
            self._mono = at
            callback()
        self._now += until - self._mono
        self._mono = until

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await woken
        finally:
            timer.cancel()

    async def wait_for(self, awaitable: Awaitable[T], timeout: float) -> T:
        task = asyncio.ensure_future(awaitable)
        expired: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def expire() -> None:
            if not expired.done():
                expired.set_result(None)

        timer = self.call_later(timeout, expire)  # now, not when a helper task first runs
        try:
            either: set[asyncio.Future[Any]] = {task, expired}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while waiting: so is what it waited for
            task.cancel()
            raise
        finally:
            timer.cancel()
            expired.cancel()
        if task.done():
            return task.result()
        task.cancel()
        raise TimeoutError

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        entry = _FakeTimer(callback)
        heapq.heappush(self._due, (self._mono + max(0.0, delay), next(self._order), entry))
        return entry

    @property
    def waiting(self) -> int:
        """Sleepers and timers not yet due (a test waits for the loops to settle)."""
        return sum(1 for _, _, t in self._due if not t.cancelled)


class _FakeTimer:
    def __init__(self, callback: Callable[[], object]) -> None:
        self._callback: Callable[[], object] | None = callback
        self.cancelled = False

    def __call__(self) -> None:
        if self._callback is not None:
            callback, self._callback = self._callback, None
            callback()

    def cancel(self) -> None:
        self._callback = None
        self.cancelled = True
