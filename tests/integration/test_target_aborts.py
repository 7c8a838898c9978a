"""Cancel and timeout abort an HTTP target's request in flight (issue 19, point 5), on
SQLite and PostgreSQL: a real endpoint on loopback that never answers records when
Sluice closes the connection."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import sluice
from sluice.client import AsyncClient
from tests.harness import Running, free_port, running_server, wait_for

app = sluice.App("target-aborts")


class Hanging:
    """An endpoint that reads a request and never answers; notes when the caller hangs up."""

    def __init__(self) -> None:
        self.received: list[float] = []
        self.closed: list[float] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        self.received.append(time.monotonic())
        await reader.read()  # b"" once the caller closes the connection
        self.closed.append(time.monotonic())
        writer.close()


@contextlib.asynccontextmanager
async def hanging() -> AsyncIterator[tuple[Hanging, str]]:
    endpoint = Hanging()
    port = free_port()
    server = await asyncio.start_server(endpoint.serve, "127.0.0.1", port)
    try:
        yield endpoint, f"http://127.0.0.1:{port}/never"
    finally:
        server.close()


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend, targets_allow_loopback=True) as srv:
        yield srv


async def test_cancelling_a_task_aborts_its_request_in_flight(server: Running) -> None:
    async with hanging() as (endpoint, url), AsyncClient(server.url, server.api_key) as c:
        await c.functions.set("slow", {"target": {"url": url, "timeout_s": 600}})
        task = await c.submit({"function": "slow", "args": []})
        await wait_for(lambda: endpoint.received)
        cancelled = time.monotonic()
        await c.tasks.cancel(task.id)
        await wait_for(lambda: endpoint.closed, timeout=5)  # not the 600 s of the target
        assert endpoint.closed[0] - cancelled < 5
        assert (await c.get(task.id)).state == "cancelled"
        conn = server.node.targets.get(server.tenant_id, "slow")
        assert conn is not None
        await wait_for(lambda: not conn.inflight and conn.aimd.inflight == 0)


@pytest.mark.parametrize("where", ["target", "task"])
async def test_a_timeout_aborts_the_request_and_fails_the_attempt(
    server: Running, where: str
) -> None:
    # The target's own wait, or the function's timeout when it is the shorter.
    config = (
        {"target": {"url": "", "timeout_s": 0.5}}
        if where == "target"
        else {"target": {"url": "", "timeout_s": 600}, "timeout_s": 0.5}
    )
    async with hanging() as (endpoint, url), AsyncClient(server.url, server.api_key) as c:
        config["target"]["url"] = url  # type: ignore[index]
        await c.functions.set("slow", {**config, "retry": {"max_attempts": 1}})
        task = await c.submit({"function": "slow", "args": []})
        await wait_for(lambda: endpoint.closed, timeout=10)
        assert 0.3 < endpoint.closed[0] - endpoint.received[0] < 5
        done = await c.wait(task.id, timeout=10)
        assert done.state == "dead"
        assert "no answer within 0.5 s" in (done.attempts[0].error_message or "")
