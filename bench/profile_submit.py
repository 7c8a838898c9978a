"""Where a single submit's time goes (issue 8: a profile where Sluice is slower).

    .venv/bin/python -m bench.profile_submit [N]

Runs a server node in this process under cProfile on a throwaway SQLite file, sends N
single submits from a client process (the sync SDK, one at a time, as the peers
benchmark does), and prints the client's rate, the server's CPU per submit, and the
server functions with the most cumulative time.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvicorn

from sluice.api import create_app
from sluice.api.serving import server_config
from sluice.config import Settings
from sluice.contract import FunctionConfig
from sluice.engine.node import Node

CLIENT = """
import sys, time, sluice
url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with sluice.Client(url, key) as c:
    c.submit({"function": "noop"})
    t = time.perf_counter()
    for i in range(n):
        c.submit({"function": "noop", "args": [i]})
    print(n / (time.perf_counter() - t))
"""


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({}, database=f"sqlite:///{Path(tmp) / 'p.db'}")
        node = Node(settings)
        await node.start()
        tenant = await node.tenants.ensure("profile")
        key = await node.tenants.create_key(tenant.id)
        await node.functions.register(tenant.id, [FunctionConfig(name="noop")])
        # The uvicorn settings and protocol every node serves with.
        config = server_config(create_app(node, manage_node=False), settings,
                               host="127.0.0.1", port=8449, lifespan="off")  # fmt: skip
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        profile = cProfile.Profile()
        cpu0 = time.process_time()
        profile.enable()
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, "http://127.0.0.1:8449", key, str(n),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        out, _ = await client.communicate()
        profile.disable()
        cpu = time.process_time() - cpu0
        server.should_exit = True
        await serving
        await node.stop()
    print(f"client: {float(out):,.0f} single submits/s; server CPU {cpu / n * 1e6:.0f} us each")
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(20)
    print(text.getvalue())


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
