"""The engine's loops read the time and wait only through the injected clock, so a fake
clock drives them; the fake clock keeps its promises; the timers run a step at a time."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from sluice.clock import FakeClock

ENGINE = Path(__file__).parents[2] / "sluice" / "engine"
# Reading the time or waiting for a while other than through the clock. A bare yield
# (`asyncio.sleep(0)`) waits for no time and is allowed.
DIRECT = re.compile(
    r"time\.time\(|time\.monotonic\(|time\.perf_counter\(|loop\.time\(|"
    r"asyncio\.wait_for\(|asyncio\.timeout\(|\.call_later\(|datetime\.now\(|"
    r"asyncio\.sleep\((?!0\))"
)


def test_no_engine_module_reads_the_time_or_waits_but_through_the_clock() -> None:
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(ENGINE.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if DIRECT.search(line) and "clock." not in line
    ]
    assert found == []


async def test_a_fake_sleep_ends_when_the_clock_passes_it_and_not_before() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("b", 2.0), ("a", 1.0))]
    await asyncio.sleep(0)
    clock.advance(0.5)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(1.0)
    await asyncio.sleep(0)
    assert woke == ["a"]
    clock.advance(10.0)
    await asyncio.gather(*tasks)
    assert woke == ["a", "b"]
    assert clock.monotonic() == 11.5 and clock.now() == 1_700_000_011.5


async def test_fake_wait_for_times_out_on_the_fake_clock_and_returns_what_came_first() -> None:
    clock = FakeClock()
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(clock.wait_for(never, 5.0))
    await asyncio.sleep(0)
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(0.2)
    with pytest.raises(TimeoutError):
        await waiting
    assert never.cancelled()

    soon: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    answered = asyncio.create_task(clock.wait_for(soon, 5.0))
    await asyncio.sleep(0)
    soon.set_result(7)
    assert await answered == 7
    assert clock.waiting == 0  # the timeout's timer was let go


def test_call_later_runs_callbacks_in_time_order_as_time_passes() -> None:
    clock = FakeClock()
    ran: list[tuple[str, float]] = []
    clock.call_later(3, lambda: ran.append(("c", clock.monotonic())))
    clock.call_later(1, lambda: ran.append(("a", clock.monotonic())))
    cancelled = clock.call_later(2, lambda: ran.append(("x", clock.monotonic())))
    cancelled.cancel()
    clock.advance(5)
    assert ran == [("a", 1.0), ("c", 3.0)]
