"""Taskiq with taskiq-redis's ListQueueBroker: `taskiq worker --workers 2`."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import redis
from taskiq_redis import ListQueueBroker

from bench.peers import base

broker = ListQueueBroker(base.REDIS_URL)
TASKIQ_REDIS = version("taskiq-redis")


@broker.task(task_name="noop")
async def noop(i: int) -> None:
    base.record(i)


class Plugin(base.System):
    name = "Taskiq"
    version = version("taskiq")
    workers_config = "`taskiq worker --workers 2`: 2 processes x 100 async (max-async-tasks)"
    config = (
        f"taskiq-redis {TASKIQ_REDIS} ListQueueBroker, no result backend; "
        "async client awaited one call at a time; delays need a separate `taskiq scheduler` "
        "process and a schedule source, not measured here"
    )

    def setup(self) -> None:
        redis.Redis.from_url(base.REDIS_URL).flushdb()
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(broker.startup())

    def start_workers(self, processes: int = 2) -> None:
        self.spawn([
            self.bin("taskiq"), "worker", "bench.peers.taskiq_:broker", "--workers",
            str(processes),
        ])  # fmt: skip

    def enqueue_one(self, i: int) -> None:
        self.loop.run_until_complete(noop.kiq(i))

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.run_until_complete(broker.shutdown())
            self.loop.close()
