"""RQ: 2 `rq worker` processes (each forks a work horse per job, RQ's default)."""

from __future__ import annotations

import datetime as dt
from importlib.metadata import version

import redis
from rq import Queue

from bench.peers import base

QUEUE = "bench"


def noop(i: int) -> None:
    base.record(i)


class Plugin(base.System):
    name = "RQ"
    version = version("rq")
    workers_config = "2 x `rq worker` (default Worker: a forked work horse per job): 2 x 1"
    config = (
        "Redis; results kept for the default 500 s; one of the workers runs the "
        "scheduler (`--with-scheduler`) for `enqueue_in`; bulk is `Queue.enqueue_many`"
    )
    has_bulk = True
    has_delay = True

    def setup(self) -> None:
        self.redis = redis.Redis.from_url(base.REDIS_URL)
        self.redis.flushdb()
        self.queue = Queue(QUEUE, connection=self.redis)

    def start_workers(self, processes: int = 2) -> None:
        for _ in range(processes):
            self.spawn([
                self.bin("rq"), "worker", QUEUE, "--url", base.REDIS_URL, "--with-scheduler",
                "--logging_level", "WARNING",
            ])  # fmt: skip

    def enqueue_one(self, i: int) -> None:
        self.queue.enqueue(noop, i)

    def enqueue_bulk(self, ids: list[int]) -> None:
        self.queue.enqueue_many([Queue.prepare_data(noop, (i,)) for i in ids])

    def enqueue_delayed(self, i: int, delay_s: float) -> None:
        self.queue.enqueue_in(dt.timedelta(seconds=delay_s), noop, i)

    def teardown(self) -> None:
        if hasattr(self, "redis"):
            self.redis.close()
