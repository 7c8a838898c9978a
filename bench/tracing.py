"""The cost of tracing: Sluice's per-task time with OpenTelemetry on and off.

    python -m bench.tracing [--tasks 5000] [--submits 500] [--rounds 3] [--backend sqlite]

Each round runs both modes, each in a fresh process, off first then on:

- off: tracing off as users get it by default: nothing imports OpenTelemetry (the run
  checks that `opentelemetry.trace` was never loaded);
- on: an SDK `TracerProvider` with a `BatchSpanProcessor` whose exporter drops the spans,
  handed to the server node (wait, dispatch spans), the worker (a process span per
  attempt) and the client (a send span per request); every submit is made inside a
  span, so every task carries a trace context. The figure is the cost of making and
  processing the spans and of carrying the context, not of shipping spans anywhere.

In each process one server node (over real HTTP and websockets), one worker (32 slots)
and the client share one event loop, as in `sluice dev`; so the per-task figures add
the server's, the worker's and the client's CPU time, and a two-process deployment
would split them. Measured:

- drain: `--tasks` no-op tasks submitted in batches of 1,000 before the worker
  connects (and the single submits' tasks below), then drained: microseconds per task
  from the worker's start to the last handler's return;
- submit: `--submits` single submits one after the other: microseconds per submit.

Medians over the rounds are printed, with the difference on - off. Nothing is written
to bench/RESULTS.md: copy the lines printed under "## Tracing" there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("SLUICE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
BATCH = 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _provider() -> Any:
    """An SDK provider that processes spans as in production and exports them nowhere."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Nowhere()))
    return provider


@contextlib.asynccontextmanager
async def _database(backend: str, work: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{work / 'sluice.db'}"
        return
    import asyncpg

    name = f"sluice_bench_tracing_{os.getpid()}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
        yield f"{PG_SERVER}/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def _measure(mode: str, backend: str, tasks: int, submits: int) -> dict[str, float]:
    import uvicorn

    import sluice
    from sluice.api import create_app
    from sluice.api.serving import server_config
    from sluice.client import AsyncClient
    from sluice.config import Settings
    from sluice.engine.node import Node
    from sluice.worker.runtime import Worker

    provider = _provider() if mode == "on" else None
    app = sluice.App("bench-tracing")
    done = asyncio.Event()
    ran = [0]

    @app.task
    async def noop(i: int = 0) -> None:
        ran[0] += 1
        if ran[0] == tasks + submits:  # the single submits' tasks are drained too
            done.set()

    root: Any = contextlib.nullcontext()
    if provider is not None:
        root = provider.get_tracer("bench").start_as_current_span("bench-root")
    with tempfile.TemporaryDirectory() as tmp:
        async with _database(backend, Path(tmp)) as database:
            settings = Settings.from_env({}, database=database)
            node = Node(settings, tracer_provider=provider)
            await node.start()
            tenant = await node.tenants.ensure(app.name)
            key = await node.tenants.create_key(tenant.id)
            await node.functions.register(tenant.id, [t.config for t in app.tasks.values()])
            port = _free_port()
            asgi = create_app(node, manage_node=False)
            server = uvicorn.Server(
                server_config(asgi, settings, host="127.0.0.1", port=port, lifespan="off")
            )
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            serving = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.01)
            url = f"http://127.0.0.1:{port}"
            try:
                async with AsyncClient(url, key, tracer_provider=provider) as client:
                    with root:
                        began = time.perf_counter()
                        for _ in range(submits):
                            await client.submit({"function": "noop"})
                        submit_s = time.perf_counter() - began
                        specs = [{"function": "noop", "args": [i]} for i in range(tasks)]
                        await client.submit_many(specs, max_count=BATCH)
                    worker = Worker(app, url=url, api_key=key, concurrency=32,
                                    tracer_provider=provider)  # fmt: skip
                    began = time.perf_counter()
                    running = asyncio.create_task(worker.run())
                    await asyncio.wait_for(done.wait(), timeout=600)
                    drain_s = time.perf_counter() - began
                    worker.stop()
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await running
            finally:
                server.should_exit = True
                await serving
                await node.stop()
    if provider is not None:
        provider.shutdown()
    loaded = "opentelemetry.trace" in sys.modules
    if mode == "off" and loaded:
        raise SystemExit("tracing off, yet OpenTelemetry was imported: the figure is void")
    return {
        "drain_us_per_task": drain_s / (tasks + submits) * 1e6,
        "submit_us": submit_s / submits * 1e6,
    }


def _run_once(mode: str, backend: str, tasks: int, submits: int) -> dict[str, float]:
    """One mode in a fresh process, so `off` never sees a module `on` loaded."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.tracing", "--child", mode, "--backend", backend,
         "--tasks", str(tasks), "--submits", str(submits)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--submits", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        figures = asyncio.run(
            _measure(options.child, options.backend, options.tasks, options.submits)
        )
        print(json.dumps(figures))
        return
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for i in range(options.rounds):
        for mode in ("off", "on"):
            figures = _run_once(mode, options.backend, options.tasks, options.submits)
            runs[mode].append(figures)
            shown = ", ".join(f"{k} {v:,.1f}" for k, v in figures.items())
            print(f"round {i + 1} {mode}: {shown}", flush=True)
    command = (
        f"python -m bench.tracing --tasks {options.tasks} --submits {options.submits} "
        f"--rounds {options.rounds} --backend {options.backend}"
    )
    print(f"\n## Tracing\n\n- command: `{command}`\n")
    print("| figure (median) | off | on | on - off |\n| --- | ---: | ---: | ---: |")
    for key in runs["off"][0]:
        off = statistics.median(r[key] for r in runs["off"])
        on = statistics.median(r[key] for r in runs["on"])
        print(f"| {key} | {off:,.1f} | {on:,.1f} | {on - off:+,.1f} ({(on / off - 1):+.0%}) |")


if __name__ == "__main__":
    main()
