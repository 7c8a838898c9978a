"""arq: 2 `arq` worker processes (arq has no multi-process option), max_jobs 10 each."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings

from bench.peers import base

REDIS = RedisSettings.from_dsn(base.REDIS_URL)


async def noop(ctx: dict[str, Any], i: int) -> None:
    base.record(i)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop]
    redis_settings = REDIS


class Plugin(base.System):
    name = "arq"
    version = version("arq")
    workers_config = "2 x `arq WorkerSettings`: 2 processes x 10 jobs (max_jobs default)"
    config = (
        "Redis; defaults (poll_delay 0.5 s); async client awaited one call at a time "
        "on one event loop; delays with `_defer_by`"
    )
    has_delay = True

    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(REDIS))
        self.loop.run_until_complete(self.pool.flushdb())

    def start_workers(self, processes: int = 2) -> None:
        for _ in range(processes):
            self.spawn([self.bin("arq"), "bench.peers.arq_.WorkerSettings"])

    def enqueue_one(self, i: int) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("noop", i))

    def enqueue_delayed(self, i: int, delay_s: float) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("noop", i, _defer_by=delay_s))

    def teardown(self) -> None:
        if hasattr(self, "pool"):
            self.loop.run_until_complete(self.pool.aclose())
            self.loop.close()
