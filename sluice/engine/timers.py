"""Timers: the node's periodic jobs, each on its own beat, on the injected clock.

Jobs that scan the whole store (promotion, cron, expiry, the reaper, retention) run on
one node at a time: the holder of the "timers" lease in the store (LEADER_TTL_S,
renewed every LEADER_RENEW_S, judged on the database's clock); if that node dies
another takes over once the lease runs out. The others (lease renewal for this node's
workers, the fair clock, backpressure, partition leases) run on every node.

Each job runs in its own loop, so a slow one (a big purge) never delays another (a
partition lease's renewal). With `spread`, jobs are kept off each other's beat: after
its first run each job moves by its own fraction of its interval, so a node's dozen
one-second jobs do not all hit the store in the same millisecond every second (they did,
and that burst set the p99 of submit→start). `step()` runs every job that is due once,
in order, for tests that move a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .runtime import Runtime

log = logging.getLogger("sluice.timers")

LEADER_LEASE = "timers"
LEADER_TTL_S = 10.0
LEADER_RENEW_S = 2.0
GOLDEN = 0.6180339887  # successive multiples, mod 1, fall evenly apart for any count

Tick = Callable[[], Awaitable[object] | object]


@dataclass
class Job:
    name: str
    interval: float
    tick: Tick
    lead: bool  # runs on the timers leader only
    next_at: float  # monotonic
    phase: float = 0.0  # added once, after the first run (spread)


class Timers:
    def __init__(self, rt: Runtime, *, spread: bool = False) -> None:
        self._rt = rt
        self._spread = spread
        self.leader = False
        self._jobs: list[Job] = []
        self.every("lead", LEADER_RENEW_S, self.lead_once, first_after=LEADER_RENEW_S)

    def every(
        self, name: str, interval: float, tick: Tick, *, lead: bool = False,
        first_after: float = 0.0,
    ) -> None:  # fmt: skip
        """Run `tick` every `interval` seconds (the first after `first_after`); with
        `lead`, only while this node holds the timers lease."""
        phase = (len(self._jobs) * GOLDEN % 1.0) * interval if self._spread else 0.0
        next_at = self._rt.clock.monotonic() + first_after
        self._jobs.append(Job(name, interval, tick, lead, next_at, phase))

    async def run(self) -> None:
        """Every job on its own beat, until cancelled."""
        try:
            await self.lead_once()  # before the first tick, so a lone node starts as leader
        except Exception:
            log.exception("taking the timers lease failed; trying again on its beat")
        await asyncio.gather(*(self._loop(job) for job in self._jobs))

    async def step(self) -> int:
        """Run every job due now once; returns how many ran (a job for the leader
        only is skipped, not run, on another node)."""
        ran = 0
        for job in self._jobs:
            if self._rt.clock.monotonic() >= job.next_at:
                ran += await self._run(job)
        return ran

    async def _loop(self, job: Job) -> None:
        clock = self._rt.clock
        while True:
            await clock.sleep(job.next_at - clock.monotonic())
            await self._run(job)

    async def _run(self, job: Job) -> int:
        job.next_at = self._rt.clock.monotonic() + job.interval + job.phase
        job.phase = 0.0
        if job.lead and not self.leader:
            return 0
        try:
            result = job.tick()
            if isinstance(result, Awaitable):
                await result
        except Exception:
            log.exception("timer %s failed", job.name)
        return 1

    async def lead_once(self) -> None:
        rt = self._rt
        held = False  # on an error, step down: the lease runs out for everyone alike
        try:
            held = await rt.store.acquire_lease(LEADER_LEASE, rt.node_id, LEADER_TTL_S)
        finally:
            if held != self.leader:
                log.info("node %s %s the timers", rt.node_id, "runs" if held else "stops")
            self.leader = held

    async def step_down(self) -> None:
        """Hand the timers lease back on a clean stop, so another node takes over at
        its next try instead of after the lease runs out."""
        if self.leader:
            self.leader = False
            await self._rt.store.release_lease(LEADER_LEASE, self._rt.node_id)
