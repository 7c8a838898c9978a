"""Sluice itself, from the repository's .venv: a `sluice server` on a throwaway SQLite
file or PostgreSQL database, and `sluice worker --processes 2`. In the fairness
workload the workers are a shared pool (the server's pool key) and the two tenants are
real tenants with their own API keys."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import psycopg

import sluice
from bench.peers import base

app = sluice.App("peers")


@app.task
def noop(i: int = 0) -> None:
    base.record(i)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Plugin(base.System):
    name = "Sluice"
    version = version("sluice")
    workers_config = (
        "`sluice worker --processes 2`: 2 processes x 10 slots (default), a plain (sync) no-op"
    )
    has_bulk = True
    has_delay = True
    fairness_config = (
        "two tenants with their own API keys; the 2 worker processes are a shared pool "
        "(`SLUICE_POOL_KEY`), which starts tasks in start-time fair order"
    )

    def __init__(self, work: Path, backend: str = "sqlite") -> None:
        super().__init__(work)
        self.backend = backend
        self.name = f"Sluice ({'SQLite' if backend == 'sqlite' else 'PostgreSQL'})"
        self.config = (
            f"one `sluice server` node on {backend}, default settings; sync `sluice.Client`; "
            "bulk is `submit_many` (batches of 1,000)"
        )
        self.pg_name = f"sluice_peers_{os.getpid()}"

    def admin(self, sql: str) -> None:
        with psycopg.connect(f"{base.PG_SERVER}/postgres", autocommit=True) as pg:
            pg.execute(sql.encode())

    def setup(self) -> None:
        if self.backend == "sqlite":
            database = f"sqlite:///{self.work / 'sluice.db'}"
        else:
            self.admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            self.admin(f'CREATE DATABASE "{self.pg_name}"')
            database = f"{base.PG_SERVER}/{self.pg_name}"
        url = f"http://127.0.0.1:{free_port()}"
        self.pool_key = f"pool-{os.getpid()}"
        self.env.update(SLUICE_DATABASE=database, SLUICE_URL=url, SLUICE_POOL_KEY=self.pool_key)
        out = subprocess.run(
            [sys.executable, "-m", "sluice", "tenant", "create", "peers", "-o", "json"],
            env=self.env, capture_output=True, check=True,
        )  # fmt: skip
        self.env["SLUICE_API_KEY"] = key = json.loads(out.stdout)["api_key"]
        self.spawn([sys.executable, "-m", "sluice", "server", "--port", url.rsplit(":", 1)[1]])
        deadline = time.monotonic() + 30
        while not self.healthy(url):
            if time.monotonic() > deadline:
                raise SystemExit("sluice server did not start")
            time.sleep(0.05)
        app.configure(url=url, api_key=key)
        app.register()
        self.client = sluice.Client(url, key)
        self.url = url
        self.tenants: dict[str, sluice.Client] = {}

    def healthy(self, url: str) -> bool:
        try:
            return bool(httpx.get(f"{url}/v1/health", timeout=2).json().get("status") == "ok")
        except httpx.HTTPError:
            return False

    def start_workers(self, processes: int = 2) -> None:
        self.spawn([
            sys.executable, "-m", "sluice", "worker", "bench.peers.sluice_:app",
            "--processes", str(processes),
        ])  # fmt: skip

    def setup_tenants(self, names: list[str]) -> None:
        for name in names:
            out = subprocess.run(
                [sys.executable, "-m", "sluice", "tenant", "create", name, "-o", "json"],
                env=self.env, capture_output=True, check=True,
            )  # fmt: skip
            self.tenants[name] = sluice.Client(self.url, json.loads(out.stdout)["api_key"])

    def start_shared_workers(self, processes: int = 2) -> None:
        self.spawn(
            [sys.executable, "-m", "sluice", "worker", "bench.peers.sluice_:app",
             "--processes", str(processes), "--isolation", "thread"],  # as before issue 18
            env={**self.env, "SLUICE_API_KEY": self.pool_key},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while httpx.get(f"{self.url}/v1/health", timeout=2).json().get("workers", 0) < processes:
            if time.monotonic() > deadline:
                raise SystemExit("the shared pool did not connect")
            time.sleep(0.05)

    def enqueue_as(self, tenant: str, ids: list[int]) -> None:
        client = self.tenants[tenant]
        if len(ids) == 1:
            client.submit({"function": "noop", "args": ids})
        else:
            client.submit_many([{"function": "noop", "args": [i]} for i in ids])

    def enqueue_one(self, i: int) -> None:
        self.client.submit({"function": "noop", "args": [i]})

    def enqueue_bulk(self, ids: list[int]) -> None:
        self.client.submit_many([{"function": "noop", "args": [i]} for i in ids])

    def enqueue_delayed(self, i: int, delay_s: float) -> None:
        self.client.submit({"function": "noop", "args": [i], "delay": delay_s})

    def teardown(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
            for client in self.tenants.values():
                client.close()
        if self.backend == "postgres":
            self.admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
