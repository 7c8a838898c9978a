"""The cost of process isolation per task: no-op tasks drained in the worker's thread
pool (a tenant's own worker, by default) and in child processes (`isolation="process"`,
the default of a shared pool's worker).

    python -m bench.isolation [--modes thread,process] [--tasks 3000] [--concurrency 8]
                              [--rounds 3] [--backend sqlite]

Each mode runs in a fresh process: one server node (over real HTTP and websockets) and
one worker share one event loop, as in `sluice dev`; the process mode's children are
real processes from the worker's forkserver. `--tasks` no-op sync tasks are submitted
in batches of 1,000 before the worker connects, then drained: microseconds per task
from the worker's start to the last result. The process mode's figure includes
starting its children (one per slot, plus a spare, and a new one every
`--child-max-tasks` attempts). Medians over the rounds are printed, with the process
mode's difference from thread. Nothing is written to bench/RESULTS.md: copy the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sluice

from .overhead import BATCH, ROOT, _database, _free_port

MODES = ("thread", "process")
# One app per mode, so the thread mode's worker starts no child at all.
threads = sluice.App("bench-isolation")
app = sluice.App("bench-isolation")


@threads.task(name="noop", isolation="thread")
def in_thread(i: int = 0) -> None:
    return None


@app.task(name="noop", isolation="process")
def in_process(i: int = 0) -> None:
    return None


async def _measure(
    mode: str, backend: str, tasks: int, concurrency: int, max_tasks: int
) -> dict[str, float]:
    import uvicorn

    from sluice.api import create_app
    from sluice.api.serving import server_config
    from sluice.client import AsyncClient
    from sluice.config import Settings
    from sluice.engine.node import Node
    from sluice.worker.runtime import Worker

    served = threads if mode == "thread" else app
    with tempfile.TemporaryDirectory() as tmp:
        async with _database(backend, Path(tmp)) as database:
            settings = Settings.from_env({}, database=database)
            node = Node(settings)
            await node.start()
            tenant = await node.tenants.ensure(served.name)
            key = await node.tenants.create_key(tenant.id)
            await node.functions.register(tenant.id, [t.config for t in served.tasks.values()])
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
                async with AsyncClient(url, key) as client:
                    specs = [{"function": "noop", "args": [i]} for i in range(tasks)]
                    await client.submit_many(specs, max_count=BATCH)
                worker = Worker(
                    served, url=url, api_key=key, concurrency=concurrency,
                    app_ref="bench.isolation:app", child_max_tasks=max_tasks,
                )  # fmt: skip
                began = time.perf_counter()
                running = asyncio.create_task(worker.run())
                while worker.completed < tasks:
                    await asyncio.sleep(0.001)
                drain_s = time.perf_counter() - began
                children = worker._children.started if worker._children is not None else 0
                worker.stop()
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            finally:
                server.should_exit = True
                await serving
                await node.stop()
    return {"drain_us_per_task": drain_s / tasks * 1e6, "children": float(children)}


def _run_once(mode: str, options: argparse.Namespace) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.isolation", "--child", mode, "--backend", options.backend,
         "--tasks", str(options.tasks), "--concurrency", str(options.concurrency),
         "--child-max-tasks", str(options.child_max_tasks)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--child-max-tasks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        figures = asyncio.run(
            _measure(options.child, options.backend, options.tasks, options.concurrency,
                     options.child_max_tasks)
        )  # fmt: skip
        print(json.dumps(figures))
        return
    modes = [m for m in options.modes.split(",") if m]
    if not set(modes) <= set(MODES) or not modes:
        raise SystemExit(f"--modes: some of {','.join(MODES)}")
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for i in range(options.rounds):
        for mode in modes:
            figures = _run_once(mode, options)
            runs[mode].append(figures)
            print(
                f"round {i + 1} {mode}: " + ", ".join(f"{k} {v:,.1f}" for k, v in figures.items())
            )
    command = (
        f"python -m bench.isolation --modes {','.join(modes)} --tasks {options.tasks} "
        f"--concurrency {options.concurrency} --child-max-tasks {options.child_max_tasks} "
        f"--rounds {options.rounds} --backend {options.backend}"
    )
    print(f"\n- command: `{command}`\n")
    print("| mode | drain, µs per task (median) | children started |")
    print("| --- | ---: | ---: |")
    base = statistics.median(r["drain_us_per_task"] for r in runs[modes[0]])
    for mode in modes:
        value = statistics.median(r["drain_us_per_task"] for r in runs[mode])
        children = statistics.median(r["children"] for r in runs[mode])
        shown = f"{value:,.1f}" if mode == modes[0] else f"{value:,.1f} ({value - base:+,.1f})"
        print(f"| {mode} | {shown} | {children:,.0f} |")


if __name__ == "__main__":
    main()
