"""Procrastinate on PostgreSQL: 2 `procrastinate worker` processes (it has no
multi-process option), concurrency 1 each (the default)."""

from __future__ import annotations

from importlib.metadata import version

import procrastinate
import psycopg

from bench.peers import base

DATABASE = "sluice_peers_procrastinate"
app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=f"{base.PG_SERVER}/{DATABASE}")
)


@app.task(name="noop")
def noop(i: int) -> None:
    base.record(i)


def admin(sql: str) -> None:
    with psycopg.connect(f"{base.PG_SERVER}/postgres", autocommit=True) as pg:
        pg.execute(sql.encode())


class Plugin(base.System):
    name = "Procrastinate"
    version = version("procrastinate")
    workers_config = "2 x `procrastinate worker`: 2 processes x 1 (concurrency default)"
    config = (
        "PostgreSQL, fresh database with its schema; LISTEN/NOTIFY on, defaults otherwise; "
        "bulk is `batch_defer`; delays with `configure(schedule_in=)`"
    )
    has_bulk = True
    has_delay = True

    def setup(self) -> None:
        admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin(f'CREATE DATABASE "{DATABASE}"')
        app.open()
        app.schema_manager.apply_schema()

    def start_workers(self, processes: int = 2) -> None:
        for _ in range(processes):
            app_path = "--app=bench.peers.procrastinate_.app"
            self.spawn([self.bin("procrastinate"), app_path, "worker"])

    def enqueue_one(self, i: int) -> None:
        noop.defer(i=i)

    def enqueue_bulk(self, ids: list[int]) -> None:
        noop.batch_defer(*({"i": i} for i in ids))

    def enqueue_delayed(self, i: int, delay_s: float) -> None:
        noop.configure(schedule_in={"seconds": delay_s}).defer(i=i)

    def teardown(self) -> None:
        app.close()
        admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
