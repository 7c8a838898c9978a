"""The cost of observability: Sluice's per-task time with log capture off and on, with
tasks that log, and with OpenTelemetry tracing on.

    python -m bench.overhead [--modes plain,nocapture,lines,tracing] [--lines 10]
                             [--tasks 5000] [--submits 500] [--rounds 3] [--backend sqlite]

Each round runs every mode, each in a fresh process:

- plain: as users get it by default: log capture on, tasks that do not log, tracing off
  (nothing imports OpenTelemetry: the run checks that `opentelemetry.trace` was never
  loaded);
- nocapture: the same with the worker's log capture off (`Worker(capture_logs=False)`):
  plain - nocapture is what capture costs a task that does not log;
- lines: every task logs `--lines` INFO lines (captured, shipped, stored): (lines -
  plain) / lines is the cost of one logged line;
- tracing: an SDK `TracerProvider` with a `BatchSpanProcessor` whose exporter drops the spans,
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

Medians over the rounds are printed, with each mode's difference from plain. Nothing
is written to bench/RESULTS.md: copy the table printed there.
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

    name = f"sluice_bench_overhead_{os.getpid()}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
        yield f"{PG_SERVER}/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


MODES = ("plain", "nocapture", "lines", "tracing")


async def _measure(
    mode: str, backend: str, tasks: int, submits: int, lines: int
) -> dict[str, float]:
    import logging

    import uvicorn

    import sluice
    from sluice.api import create_app
    from sluice.api.serving import server_config
    from sluice.client import AsyncClient
    from sluice.config import Settings
    from sluice.engine.node import Node
    from sluice.worker.runtime import Worker

    provider = _provider() if mode == "tracing" else None
    app = sluice.App("bench-overhead")
    done = asyncio.Event()
    ran = [0]
    logged = lines if mode == "lines" else 0
    log = logging.getLogger("bench.task")

    @app.task
    async def noop(i: int = 0) -> None:
        for k in range(logged):
            log.info("line %d of task %d", k, i)
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
                                    tracer_provider=provider,
                                    capture_logs=mode != "nocapture")  # fmt: skip
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
    if mode != "tracing" and loaded:
        raise SystemExit("tracing off, yet OpenTelemetry was imported: the figure is void")
    return {
        "drain_us_per_task": drain_s / (tasks + submits) * 1e6,
        "submit_us": submit_s / submits * 1e6,
    }


def _run_once(mode: str, backend: str, tasks: int, submits: int, lines: int) -> dict[str, float]:
    """One mode in a fresh process, so no mode sees a module another one loaded."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.overhead", "--child", mode, "--backend", backend,
         "--tasks", str(tasks), "--submits", str(submits), "--lines", str(lines)],
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
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--lines", type=int, default=10, help="lines each task logs (lines)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        figures = asyncio.run(
            _measure(options.child, options.backend, options.tasks, options.submits,
                     options.lines)
        )  # fmt: skip
        print(json.dumps(figures))
        return
    modes = [m for m in options.modes.split(",") if m]
    if "plain" not in modes or not set(modes) <= set(MODES):
        raise SystemExit(f"--modes: some of {','.join(MODES)}, plain among them")
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for i in range(options.rounds):
        for mode in modes:
            figures = _run_once(
                mode, options.backend, options.tasks, options.submits, options.lines
            )
            runs[mode].append(figures)
            shown = ", ".join(f"{k} {v:,.1f}" for k, v in figures.items())
            print(f"round {i + 1} {mode}: {shown}", flush=True)
    command = (
        f"python -m bench.overhead --modes {','.join(modes)} --lines {options.lines} "
        f"--tasks {options.tasks} --submits {options.submits} --rounds {options.rounds} "
        f"--backend {options.backend}"
    )
    print(f"\n- command: `{command}`\n")
    print("| mode | " + " | ".join(f"{k} (median)" for k in runs["plain"][0]) + " |")
    print("| --- |" + " ---: |" * len(runs["plain"][0]))
    plain = {k: statistics.median(r[k] for r in runs["plain"]) for k in runs["plain"][0]}
    for mode in modes:
        cells = []
        for key, base in plain.items():
            value = statistics.median(r[key] for r in runs[mode])
            cells.append(
                f"{value:,.1f}"
                if mode == "plain"
                else f"{value:,.1f} ({value - base:+,.1f}, {value / base - 1:+.1%})"
            )
        print(f"| {mode} | " + " | ".join(cells) + " |")
    if "lines" in modes:
        base = plain["drain_us_per_task"]
        lined = statistics.median(r["drain_us_per_task"] for r in runs["lines"])
        print(f"\none logged line: {(lined - base) / options.lines:,.1f} µs (drain, per line)")


if __name__ == "__main__":
    main()
