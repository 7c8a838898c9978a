"""Huey with Redis: `huey_consumer -k process -w 2`, its documented way to use processes."""

from __future__ import annotations

from importlib.metadata import version

from huey import RedisHuey

from bench.peers import base

huey = RedisHuey("peers", url=base.REDIS_URL)


@huey.task()
def noop(i: int) -> None:
    base.record(i)


class Plugin(base.System):
    name = "Huey"
    version = version("huey")
    workers_config = "`huey_consumer -k process -w 2`: 2 processes x 1"
    config = (
        "RedisHuey (blocking pop, its default); results on (None is not stored); "
        "consumer defaults otherwise (scheduler every 1 s); delays with `schedule(delay=)`"
    )
    has_delay = True

    def setup(self) -> None:
        huey.storage.conn.flushdb()

    def start_workers(self, processes: int = 2) -> None:
        self.spawn([
            self.bin("huey_consumer"), "bench.peers.huey_.huey", "-k", "process",
            "-w", str(processes), "-q",
        ])  # fmt: skip

    def enqueue_one(self, i: int) -> None:
        noop(i)

    def enqueue_delayed(self, i: int, delay_s: float) -> None:
        noop.schedule(args=(i,), delay=delay_s)
