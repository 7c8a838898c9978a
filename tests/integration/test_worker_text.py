"""Text from a worker that a database cannot hold as it is (a NUL: PostgreSQL's text
refuses it) is stored with the NUL replaced, never failing the write that carries it:
that write is a whole results frame, and its failure closed the worker's connection,
whose reconnect sent the same frame again, for ever, with every task in it left
running. And a webhook URL with a control character is refused at the door."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import httpx
import pytest
import websockets

import sluice
from sluice.engine.logs import WORKER_SKEW_S
from sluice.model import DEAD, SUCCEEDED
from sluice.protocol import WORKER_PATH
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("text")
log = logging.getLogger("text.handler")


@app.task(non_retryable=(ValueError,))
def nul(x: str) -> str:
    log.warning("a line with a %s in it", "\x00")
    print("stdout with a \x00 too")
    raise ValueError(f"a message with a \x00 in it ({x})")


@app.task
def fine(x: int) -> int:
    return x


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_nul_in_an_error_and_a_log_line_is_stored_replaced(
    tmp_path: Path, backend: str
) -> None:
    async with (
        running_server(tmp_path, app, backend) as server,
        running_worker(server, app, concurrency=2),
    ):
        client = sluice.AsyncClient(server.url, server.api_key)
        failing = await client.submit({"function": "nul", "args": ["\x00"]})
        after = await client.submit({"function": "fine", "args": [7]})

        async def ended() -> bool:
            states = [(await client.tasks.get(t.id)).state for t in (failing, after)]
            return states == [DEAD, SUCCEEDED]

        await wait_for(ended, timeout=20)
        task = await client.tasks.get(failing.id)
        assert task.error is not None and "\x00" not in task.error
        assert "a message with a \ufffd in it" in task.error
        lines = [line.message async for line in client.tasks.logs(failing.id)]
        assert any("a line with a \ufffd in it" in m for m in lines), lines
        assert any("stdout with a \ufffd too" in m for m in lines), lines
        await client.aclose()


async def test_a_webhook_url_with_a_control_character_is_refused(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as server:
        headers = {"authorization": f"Bearer {server.api_key}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            for url in ("http://example.com/a\x00b", "http://example.com/a\x7fb",
                        "http://example.com/a\x1bb"):  # fmt: skip
                task = await http.post("/v1/tasks", json={
                    "function": "fine", "args": [1], "webhooks": [{"url": url}]})  # fmt: skip
                assert task.status_code == 400, (url, task.text)
                assert task.json()["error"]["field"].startswith("webhooks")
        assert server.count() == 0


async def test_results_no_store_could_hold_are_refused_alone_and_times_kept_sane(
    tmp_path: Path, backend: str
) -> None:
    # A worker of its own (raw frames): an attempt past PostgreSQL's integer, and times
    # of ±1e308 (their difference, infinite, broke every tenant's per-minute counts).
    async with running_server(tmp_path, app, backend) as server:
        url = server.url.replace("http://", "ws://") + WORKER_PATH
        headers = {"authorization": f"Bearer {server.api_key}"}
        async with websockets.connect(url, additional_headers=headers) as ws:
            await ws.send(
                json.dumps(
                    {
                        "t": "hello",
                        "worker_id": "raw",
                        "slots": 2,
                        "functions": [{"name": "fine", "config": {}}],
                    }
                )
            )
            assert json.loads(await ws.recv())["t"] == "welcome"
            async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
                ids = []
                for i in range(2):
                    submitted = await http.post("/v1/tasks", json={"function": "fine",
                                                                   "args": [i]})  # fmt: skip
                    ids.append(submitted.json()["id"])
                    deliver = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert [t["id"] for t in deliver["tasks"]] == [ids[-1]]
                other, task_id = ids
                items = [
                    {"id": other, "attempt": 2**31, "outcome": "ok", "started_at": 1.0,
                     "finished_at": 2.0},
                    {"id": task_id, "attempt": 1, "outcome": "ok", "started_at": -1e308,
                     "finished_at": 1e308, "result": 1},
                ]  # fmt: skip
                await ws.send(json.dumps({"t": "results", "items": items}))
                ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert ack == {"t": "ack", "items": [[other, 2**31, False],
                                                     [task_id, 1, True]]}  # fmt: skip
                await ws.send(json.dumps({"t": "hb"}))  # the connection is still open
                task = (await http.get(f"/v1/tasks/{task_id}")).json()
        assert task["state"] == SUCCEEDED
        (attempt,) = task["attempts"]
        now = time.time()
        for at in (attempt["started_at"], attempt["finished_at"]):
            assert now - 2 * WORKER_SKEW_S < at < now + 2 * WORKER_SKEW_S
        assert await server.node.meters.flush() > 0  # the minute's counts are written
