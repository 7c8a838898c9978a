"""Task progress (issue 18 point 6), over a real server, a real worker and real HTTP: a
handler's `ctx.progress(done, total, message)` (sync or async, or through
`sluice.current_task()`) is shown by `GET /v1/tasks/{id}` while the task runs and after
it ends, by `sluice tasks get`, and by the console's task page as a progress bar; bad
values are refused in the handler with a clear error."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import sluice
from sluice.cli.main import cli
from sluice.worker.context import TaskContext
from tests.harness import Running, running_server, running_worker, wait_for

app = sluice.App("progress")
halfway = threading.Event()


@app.task
def halves(ctx: TaskContext, total: int) -> int:
    ctx.progress(total / 2, total, "half")
    while not halfway.is_set() and not ctx.wait(0.01):
        pass
    ctx.progress(total, total, "all")
    return total


@app.task
async def tight(n: int) -> int:
    ctx = sluice.current_task()
    for i in range(1, n + 1):
        ctx.progress(i)  # no total: not known; only the last one is shipped
    return n


@pytest.fixture
async def server(tmp_path: Path, backend: str) -> AsyncIterator[Running]:
    async with running_server(tmp_path, app, backend) as srv:
        yield srv


async def _task(http: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    answer = await http.get(f"/v1/tasks/{task_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_progress_shows_while_a_task_runs_and_after_it_ends(server: Running) -> None:
    halfway.clear()
    headers = {"Authorization": f"Bearer {server.api_key}"}
    async with (
        running_worker(server, app),
        httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as http,
    ):
        answer = await http.post("/v1/tasks", json={"function": "halves", "args": [8]})
        assert answer.status_code == 201, answer.text
        task_id = answer.json()["id"]

        async def reported() -> dict[str, Any] | None:
            return (await _task(http, task_id)).get("progress")

        running = await wait_for(reported)
        assert (await _task(http, task_id))["state"] == "running"
        assert {k: running[k] for k in ("done", "total", "message", "attempt")} == {
            "done": 4.0, "total": 8.0, "message": "half", "attempt": 1,
        }  # fmt: skip
        assert math.isfinite(running["at"])
        shown = await asyncio.to_thread(
            CliRunner().invoke, cli,
            ["tasks", "get", task_id, "--url", server.url, "--api-key", server.api_key],
        )  # fmt: skip
        assert shown.exit_code == 0, shown.output
        assert "progress 4 of 8 (50%): half  (attempt 1, at " in shown.output
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as console:
            signed = await console.post("/ui/signin", data={"key": server.api_key, "next": "/"})
            assert signed.status_code == 303, signed.text
            page = await console.get(f"/ui/tasks/{task_id}", headers={"HX-Request": "true"})
            assert page.status_code == 200
            assert '<progress max="8.0" value="4.0"' in page.text
            assert "4 of 8 (50%): half" in page.text

        halfway.set()
        await wait_for(lambda: _ended(http, task_id))
        ended = await _task(http, task_id)
        assert ended["state"] == "succeeded"
        assert (ended["progress"]["done"], ended["progress"]["message"]) == (8.0, "all")

        quick = await http.post("/v1/tasks", json={"function": "tight", "args": [100_000]})
        quick_id = quick.json()["id"]
        await wait_for(lambda: _ended(http, quick_id))
        final = (await _task(http, quick_id))["progress"]
        # Shipped before the result, though the task ended before the next progress frame.
        assert (final["done"], final["total"], final["attempt"]) == (100_000.0, None, 1)


async def _ended(http: httpx.AsyncClient, task_id: str) -> bool:
    return (await _task(http, task_id))["state"] == "succeeded"


@pytest.mark.parametrize(
    ("args", "error", "says"),
    [
        ((-1,), ValueError, "progress done must be a finite number >= 0, not -1"),
        ((1, math.inf), ValueError, "progress total must be a finite number >= 0, not inf"),
        ((math.nan,), ValueError, "finite number"),
        (("3",), TypeError, "progress done must be a number, not str"),
        ((True,), TypeError, "not bool"),
        ((1, 2, "m" * 201), ValueError, "progress message is 201 characters; at most 200"),
        ((1, 2, 3), TypeError, "progress message must be a str, not int"),
    ],
)
def test_a_bad_progress_is_refused_in_the_handler_with_its_reason(
    args: tuple[Any, ...], error: type[Exception], says: str
) -> None:
    ctx = TaskContext("t1", 1, "f")
    with pytest.raises(error, match=says.replace("(", r"\(").replace(")", r"\)")):
        ctx.progress(*args)
    assert ctx._take_progress() is None
    ctx.progress(0, 0)
    assert ctx._take_progress() == (0.0, 0.0, None)
    assert ctx._take_progress() is None  # taken once
