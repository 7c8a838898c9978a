"""Large payloads (issue 20 point 8): 5,000 tasks of 64 KiB submitted, then drained by
the default worker (2 processes), with the SQLite WAL's size sampled all along.

    python -m bench.payloads [--backend sqlite|postgres] [--tasks 5000] [--kib 64]

Prints the submit and drain rates and, on SQLite, the WAL's largest size and its size
once the drain ended (the checkpoint thread truncates a WAL past its 64 MiB limit:
sluice/store/sqlite/database.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time

import sluice
from bench.apps import app
from bench.run import rig, wait_until

SAMPLE_S = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--kib", type=int, default=64)
    parser.add_argument("--port", type=int, default=8433)
    args = parser.parse_args()
    data = "x" * (args.kib * 1024 - 30)  # the payload's JSON is about --kib KiB
    with rig(args.port, args.backend) as r:
        wal = None if r.postgres else r.database.removeprefix("sqlite:///") + "-wal"
        sizes: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_S):
                if wal is not None:
                    with contextlib.suppress(OSError):
                        sizes.append(os.path.getsize(wal))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        app.configure(url=r.url, api_key=r.api_key)
        app.register()
        with sluice.Client(r.url, r.api_key) as client:
            began = time.perf_counter()
            client.submit_many([{"function": "blob", "args": [data]} for _ in range(args.tasks)])
            submit_s = time.perf_counter() - began
        began = time.perf_counter()
        proc = r.start("worker", "bench.apps:app", "--processes", "2")  # the defaults
        wait_until(lambda: r.count("succeeded") == args.tasks, 600, "the drain")
        drain_s = time.perf_counter() - began  # worker start-up included
        r.stop_workers(proc)
        time.sleep(3.0)  # three checkpoint intervals after the load
        done.set()
        sampler.join()
        after = os.path.getsize(wal) if wal is not None and os.path.exists(wal) else 0
    print(f"backend: {args.backend}; {args.tasks} tasks of {args.kib} KiB")
    print(f"submit (sync SDK, submit_many): {args.tasks / submit_s:,.0f} tasks/s "
          f"({args.tasks * args.kib / 1024 / submit_s:,.0f} MiB/s)")  # fmt: skip
    print(f"drain (2 worker processes, worker start included): {args.tasks / drain_s:,.0f} tasks/s")
    if wal is not None:
        print(f"WAL: largest {max(sizes, default=0) / 2**20:,.1f} MiB, "
              f"{after / 2**20:,.1f} MiB 3 s after the drain")  # fmt: skip
    print(f"command: python -m bench.payloads --backend {args.backend} --tasks {args.tasks} "
          f"--kib {args.kib}")  # fmt: skip


if __name__ == "__main__":
    main()
