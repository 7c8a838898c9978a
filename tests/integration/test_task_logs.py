"""Per-attempt logs (DESIGN §8 "Logs"): a real server, real workers, real HTTP.

Handlers log and print; each task's lines come back through `GET /v1/tasks/{id}/logs`,
its own only, bounded to a head and a tail, while it runs and after it ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import sluice
from sluice.worker.context import TaskContext
from tests.harness import Running, running_server, running_worker, wait_for

app = sluice.App("logs")
log = logging.getLogger("shop.tasks")
release = threading.Event()


@app.task
async def chatty_async(n: int) -> int:
    for i in range(3):
        log.info("async %d line %d", n, i, extra={"order": n, "step": i})
        print(f"print async {n} line {i}")
        await asyncio.sleep(0)  # let the other tasks interleave
    return n


@app.task
def chatty_thread(n: int) -> int:
    for i in range(3):
        log.warning("thread %d line %d", n, i)
        print(f"print thread {n} line {i}", file=sys.stderr)
        time.sleep(0.001)
    return n


@app.task
def flood(megabytes: int) -> str:
    line = "x" * 1000
    for i in range(megabytes * 1000):
        print(f"{i:07d} {line}")
    log.error("the last line")
    return "done"


@app.task
def slow(ctx: TaskContext) -> str:
    log.info("before the wait")
    while not release.is_set() and not ctx.wait(0.01):
        pass
    log.info("after the wait")
    return "released"


@app.task(retry=sluice.RetryPolicy(max_attempts=2, base_s=0.01, min_backoff_s=0.0, cap_s=0.02))
def fails_once(ctx: TaskContext) -> str:
    log.info("attempt %d starts", ctx.attempt)
    if ctx.attempt == 1:
        try:
            raise KeyError("first")
        except KeyError:
            log.exception("attempt 1 failed")
            raise
    return "ok"


async def _submit(client: httpx.AsyncClient, function: str, *args: object) -> str:
    answer = await client.post("/v1/tasks", json={"function": function, "args": list(args)})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _ended(client: httpx.AsyncClient, task_id: str) -> dict[str, object]:
    answer = await client.get(f"/v1/tasks/{task_id}/result", params={"timeout": 20})
    body = answer.json()
    assert body["state"] in ("succeeded", "dead"), body
    return dict(body)


async def _lines(client: httpx.AsyncClient, task_id: str, **query: object) -> list[dict]:
    answer = await client.get(f"/v1/tasks/{task_id}/logs", params=query)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["lines"])


def _client(running: Running) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {running.api_key}"}
    return httpx.AsyncClient(base_url=running.url, headers=headers, timeout=30)


async def test_fifty_concurrent_tasks_each_see_only_their_own_lines(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as running,
        running_worker(running, app, concurrency=50),
        _client(running) as client,
    ):
        ids = {}
        for n in range(50):
            function = "chatty_async" if n % 2 else "chatty_thread"
            ids[n] = await _submit(client, function, n)
        for n, task_id in ids.items():
            await _ended(client, task_id)
            lines = await _lines(client, task_id)
            kind = "async" if n % 2 else "thread"
            expected = set()
            for i in range(3):
                expected |= {f"{kind} {n} line {i}", f"print {kind} {n} line {i}"}
            assert {line["message"] for line in lines} == expected, (n, lines)
            assert [line["seq"] for line in lines] == list(range(6))
            for line in lines:
                if line["stream"] == "log":
                    assert line["logger"] == "shop.tasks"
                    assert line["level"] == ("INFO" if kind == "async" else "WARNING")
                    if kind == "async":
                        assert line["extra"]["order"] == n
                else:
                    assert line["stream"] == ("stdout" if kind == "async" else "stderr")


async def test_a_task_that_logs_five_megabytes_is_cut_with_a_marker(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as running,
        running_worker(running, app, concurrency=2) as worker,
        _client(running) as client,
    ):
        task_id = await _submit(client, "flood", 5)
        await _ended(client, task_id)
        lines = await _lines(client, task_id)
        kept = sum(len(line["message"]) + len(line["logger"]) + 48 for line in lines)
        assert kept <= running.node.settings.max_log_bytes + 2000
        assert lines[0]["message"].startswith("0000000 ")  # the head
        assert lines[-1]["message"] == "the last line"  # and the tail
        markers = [line for line in lines if line["stream"] == "marker"]
        assert len(markers) == 1 and "lines dropped" in markers[0]["message"]
        # The worker carries on: another task runs, and logs, as before.
        other = await _submit(client, "chatty_async", 7)
        await _ended(client, other)
        assert len(await _lines(client, other)) == 6
        assert worker.connected.is_set()


async def test_a_running_task_shows_its_start_and_its_lines_live(tmp_path: Path) -> None:
    release.clear()
    async with (
        running_server(tmp_path, app) as running,
        running_worker(running, app),
        _client(running) as client,
    ):
        task_id = await _submit(client, "slow")

        async def shipped() -> list[dict]:
            return [line for line in await _lines(client, task_id) if "before" in line["message"]]

        await wait_for(shipped, timeout=10)
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
        assert task["state"] == "running"
        assert "started" in [entry["stage"] for entry in task["timeline"]]
        # A long-poll from the last line waits for the next one.
        cursor = (await client.get(f"/v1/tasks/{task_id}/logs")).json()["next"]
        waiting = asyncio.create_task(
            client.get(f"/v1/tasks/{task_id}/logs", params={"cursor": cursor, "wait": 20})
        )
        await asyncio.sleep(0)
        release.set()
        page = (await waiting).json()
        assert [line["message"] for line in page["lines"]] == ["after the wait"]
        await _ended(client, task_id)


async def test_the_stream_follows_a_task_until_it_ends(tmp_path: Path) -> None:
    release.clear()
    async with (
        running_server(tmp_path, app) as running,
        running_worker(running, app),
        _client(running) as client,
    ):
        task_id = await _submit(client, "slow")
        seen: list[tuple[str, str]] = []
        async with client.stream("GET", f"/v1/tasks/{task_id}/logs/stream") as stream:
            event = ""
            async for raw in stream.aiter_lines():
                if raw.startswith("event:"):
                    event = raw.split(":", 1)[1].strip()
                elif raw.startswith("data:"):
                    data = json.loads(raw.split(":", 1)[1])
                    seen.append((event, data.get("message", "")))
                    if data.get("message") == "before the wait":
                        release.set()
        assert seen == [("log", "before the wait"), ("log", "after the wait"), ("end", "")]


async def test_filters_pick_an_attempt_a_level_and_a_text(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as running,
        running_worker(running, app),
        _client(running) as client,
    ):
        task_id = await _submit(client, "fails_once")
        assert (await _ended(client, task_id))["state"] == "succeeded"
        every = await _lines(client, task_id)
        assert [(line["attempt"], line["message"].split("\n")[0]) for line in every] == [
            (1, "attempt 1 starts"),
            (1, "attempt 1 failed"),
            (2, "attempt 2 starts"),
        ]
        assert "KeyError: 'first'" in every[1]["message"]  # the traceback, rendered
        assert [line["attempt"] for line in await _lines(client, task_id, attempt=2)] == [2]
        errors = await _lines(client, task_id, level="error")
        assert [line["level"] for line in errors] == ["ERROR"]
        assert len(await _lines(client, task_id, q="STARTS")) == 2
        page = (await client.get(f"/v1/tasks/{task_id}/logs", params={"limit": 2})).json()
        assert page["more"] and page["next"] == "1.1"
        rest = await _lines(client, task_id, cursor=page["next"])
        assert [line["message"] for line in rest] == ["attempt 2 starts"]
        bad = await client.get(f"/v1/tasks/{task_id}/logs", params={"level": "loud"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"


async def test_another_tenant_cannot_read_a_tasks_lines(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as running,
        running_worker(running, app),
        _client(running) as client,
    ):
        task_id = await _submit(client, "chatty_async", 1)
        await _ended(client, task_id)
        other = await running.node.tenants.ensure("other")
        key = await running.node.tenants.create_key(other.id)
        headers = {"Authorization": f"Bearer {key}"}
        for path in (f"/v1/tasks/{task_id}/logs", f"/v1/tasks/{task_id}/logs/stream"):
            answer = await client.get(path, headers=headers)
            assert answer.status_code == 404, answer.text


@pytest.mark.parametrize("backend", ["postgres"])
async def test_lines_are_kept_on_postgres_too(tmp_path: Path, backend: str) -> None:
    async with (
        running_server(tmp_path, app, backend) as running,
        running_worker(running, app),
        _client(running) as client,
    ):
        task_id = await _submit(client, "fails_once")
        await _ended(client, task_id)
        lines = await _lines(client, task_id)
        assert [line["attempt"] for line in lines] == [1, 1, 2]
        assert len(await _lines(client, task_id, q="failed")) == 1


async def test_an_http_target_can_send_its_log_lines_back(tmp_path: Path) -> None:
    from aiohttp import web

    from tests.harness import free_port

    async def handle(request: web.Request) -> web.Response:
        task = await request.json()
        body = {
            "result": {"sum": sum(task["args"])},
            "logs": [
                "plain line",
                {"message": "adding", "level": "debug", "logger": "svc.add", "extra": {"n": 2}},
                {"message": "done", "level": "WARNING"},
            ],
        }
        return web.json_response(body, content_type="application/vnd.sluice.answer+json")

    web_app = web.Application()
    web_app.router.add_post("/add", handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with (
            running_server(tmp_path, app, targets_allow_loopback=True) as running,
            _client(running) as client,
        ):
            target = {"target": {"url": f"http://127.0.0.1:{port}/add", "timeout_s": 5.0}}
            put = await client.put("/v1/functions/remote_add", json=target)
            assert put.status_code == 200, put.text
            task_id = await _submit(client, "remote_add", 1, 1)
            done = await _ended(client, task_id)
            assert done["result"] == {"sum": 2}
            lines = await _lines(client, task_id)
            assert [(ln["level"], ln["logger"], ln["message"]) for ln in lines] == [
                ("INFO", "target", "plain line"),
                ("DEBUG", "svc.add", "adding"),
                ("WARNING", "target", "done"),
            ]
            assert lines[1]["extra"] == {"n": 2}
    finally:
        await runner.cleanup()
