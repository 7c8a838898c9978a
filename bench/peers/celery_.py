"""Celery with the Redis broker: `celery worker` with the prefork pool, 2 processes."""

from __future__ import annotations

import celery

from bench.peers import base

app = celery.Celery("peers", broker=base.REDIS_URL)
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False)


@app.task(name="noop")
def noop(i: int) -> None:
    base.record(i)


class Plugin(base.System):
    name = "Celery"
    version = celery.__version__
    workers_config = "`celery worker --pool prefork --concurrency 2`: 2 processes x 1"
    config = (
        "Redis broker; JSON; results ignored; defaults otherwise "
        "(prefetch multiplier 4, acks early); delays with `countdown` (held by the worker)"
    )
    has_delay = True

    def setup(self) -> None:
        with app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()

    def start_workers(self, processes: int = 2) -> None:
        self.spawn([
            self.bin("celery"), "-A", "bench.peers.celery_", "worker", "--pool", "prefork",
            "--concurrency", str(processes), "--loglevel", "WARNING", "--without-gossip",
            "--without-mingle", "--without-heartbeat",
        ])  # fmt: skip

    def enqueue_one(self, i: int) -> None:
        noop.delay(i)

    def enqueue_delayed(self, i: int, delay_s: float) -> None:
        noop.apply_async((i,), countdown=delay_s)
