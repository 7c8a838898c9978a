"""Direct dispatch end to end, on each backend: a real worker (which offers its memory
and CPU to the server) takes a task the moment it is submitted, leased in the submit's
own commit; a function that declares memory waits for a round, which counts what fits."""

from __future__ import annotations

from pathlib import Path

import sluice
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("direct")


@app.task
def plain(i: int = 0) -> int:
    return i


@app.task(memory_mb=64)
def sized(i: int = 0) -> int:
    return i


async def test_an_idle_worker_gets_a_submitted_task_in_the_submits_commit(
    tmp_path: Path, backend: str
) -> None:
    async with (
        # No safety-net poll during the test: its round keeps the "queue empty" mark
        # only if its probe confirms it, and a submit that arrives during a round that
        # does not rightly goes that round's way (tests/engine/test_direct.py has the
        # probe's cases, each step by hand).
        running_server(tmp_path, app, backend, poll_interval_s=60.0) as server,
        running_worker(server, app) as worker,
        sluice.AsyncClient(server.url, server.api_key) as client,
    ):
        direct = server.node.direct
        await client.submit({"function": "plain", "args": [0]})  # a round may take this one
        await wait_for(lambda: worker.completed == 1)
        before = direct.dispatched

        queues = server.node.queues
        (conn,) = list(server.node.registry)
        key = (conn.tenant_id, conn.functions)

        def looked() -> bool:
            """The dispatcher's last look found the queue empty and nothing came since:
            the condition direct dispatch is promised under (a wake-up may have a round
            in flight)."""
            return queues.empty.get(key) == queues.generation[conn.tenant_id]

        for i in range(1, 6):  # one at a time, so a slot is always free
            await wait_for(looked)
            outcome = await client.submit({"function": "plain", "args": [i]})
            assert outcome.state == "running"
            assert (await client.wait(outcome.id, 10)).state == "succeeded"
        assert direct.dispatched == before + 5

        sized = await client.submit({"function": "sized", "args": [7]})
        assert sized.state == "ready"  # what fits the worker's memory is counted by a round
        assert (await client.wait(sized.id, 10)).state == "succeeded"
        assert direct.dispatched == before + 5
