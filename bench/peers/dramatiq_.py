"""Dramatiq with the Redis broker: `dramatiq --processes 2` (8 threads each, the default)."""

from __future__ import annotations

from importlib.metadata import version

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.peers import base

broker = RedisBroker(url=base.REDIS_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def noop(i: int) -> None:
    base.record(i)


class Plugin(base.System):
    name = "Dramatiq"
    version = version("dramatiq")
    workers_config = "`dramatiq --processes 2`: 2 processes x 8 threads (default)"
    config = "Redis broker; default middleware; delays with `send_with_options(delay=)`"
    has_delay = True

    def setup(self) -> None:
        broker.client.flushdb()

    def start_workers(self, processes: int = 2) -> None:
        self.spawn([self.bin("dramatiq"), "bench.peers.dramatiq_", "--processes", str(processes)])

    def enqueue_one(self, i: int) -> None:
        noop.send(i)

    def enqueue_delayed(self, i: int, delay_s: float) -> None:
        noop.send_with_options(args=(i,), delay=int(delay_s * 1000))
