"""Destinations (issue 19, point 2), end to end on SQLite and PostgreSQL: a success
starts the next function with the result, a death starts another with the error, a
chain of three runs end to end with each task linked to the next, a delivery tried again
starts nothing twice, and one result fans out to several functions through a topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import sluice
from sluice.client import AsyncClient
from tests.harness import Running, running_server, running_worker, wait_for

app = sluice.App("chains")
mourned: list[dict[str, Any]] = []
heard: list[tuple[str, Any]] = []


@app.task(on_success="double")
def start(n: int) -> int:
    return n + 1


@app.task(on_success="finish")
def double(x: int) -> int:
    return x * 2


@app.task
def finish(y: int) -> int:
    return y - 3


@app.task(on_failure="mourn")
def fragile(n: int) -> int:
    raise sluice.Reject(f"no {n}")


@app.task
def mourn(failure: dict[str, Any]) -> None:
    mourned.append(failure)


@app.task(retry=sluice.RetryPolicy(max_attempts=2, base_s=0.05, min_backoff_s=0.05, cap_s=0.1))
def flaky(n: int) -> int:
    raise ValueError(f"bad {n}")


@app.task
def announce(text: str) -> str:
    return text.upper()


@app.task
def left(event: dict[str, Any]) -> None:
    heard.append(("left", event["result"]))


@app.task
def right(event: dict[str, Any]) -> None:
    heard.append(("right", event["result"]))


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    mourned.clear()
    heard.clear()
    async with running_server(tmp_path, app, backend, notify_interval_s=0.05) as srv:
        yield srv


async def test_a_chain_of_three_runs_end_to_end_each_step_linked_to_the_next(
    server: Running,
) -> None:
    async with AsyncClient(server.url, server.api_key) as c, running_worker(server, app):
        first = await c.submit({"function": "start", "args": [1]})
        done = await wait_for(lambda: _next_of(c, first.id), timeout=10)
        second = await c.wait(done[0], timeout=10)
        assert (second.function, second.args, second.follows) == ("double", [2], first.id)
        [third_id] = await wait_for(lambda: _next_of(c, second.id), timeout=10)
        third = await c.wait(third_id, timeout=10)
        assert (third.function, third.result, third.follows) == ("finish", 1, second.id)
        assert (third.state, third.next) == ("succeeded", [])
        [delivery] = await c.tasks.notifications(first.id)
        assert (delivery.url, delivery.next_task, delivery.status) == (
            "function:double",
            second.id,
            201,
        )


async def _next_of(c: AsyncClient, task_id: str) -> list[str]:
    return (await c.get(task_id)).next


async def test_a_delivery_tried_again_never_starts_the_next_function_twice(
    server: Running,
) -> None:
    async with AsyncClient(server.url, server.api_key) as c:
        async with running_worker(server, app):
            first = await c.submit({"function": "start", "args": [10]})
            [second] = await wait_for(lambda: _next_of(c, first.id), timeout=10)
            await wait_for(lambda: _next_of(c, second), timeout=10)
        # As if the server had died between the submit and the settle: the row is due
        # again (that write counts as a try), and its delivery finds the task it made.
        store = server.node.store
        [row] = await store.list_notifications(server.tenant_id, first.id)
        now = server.node.clock.now()
        assert await store.settle_notification(row, "pending", now, now, None, None)
        await wait_for(lambda: _retried(c, first.id), timeout=10)
        [again] = await c.tasks.notifications(first.id)
        assert (again.next_task, again.status, again.tries) == (second, 200, 3)
        doubles = [t async for t in c.tasks.list(function="double")]
        assert [t.id for t in doubles] == [second]


async def _delivered(c: AsyncClient, task_id: str) -> bool:
    [row] = await c.tasks.notifications(task_id)
    return row.state == "delivered"


async def _retried(c: AsyncClient, task_id: str) -> bool:
    [row] = await c.tasks.notifications(task_id)
    return row.tries == 3 and row.state == "delivered"


async def test_a_death_starts_the_failure_function_with_the_error(server: Running) -> None:
    async with AsyncClient(server.url, server.api_key) as c, running_worker(server, app):
        dead = await c.submit({"function": "fragile", "args": [7]})
        await wait_for(lambda: mourned, timeout=10)
        assert (await c.get(dead.id)).state == "dead"
    [failure] = mourned
    assert (failure["task_id"], failure["function"], failure["event"]) == (
        dead.id,
        "fragile",
        "dead",
    )
    assert "no 7" in failure["error"]


async def test_one_result_fans_out_to_several_functions_through_a_topic(
    server: Running,
) -> None:
    headers = {"authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        for name in ("left", "right"):
            put = await http.put(
                f"/v1/subscriptions/to-{name}", json={"topic": "announced", "function": name}
            )
            assert put.status_code == 200, put.text
    async with AsyncClient(server.url, server.api_key) as c:
        await c.functions.set("announce", {"destinations": [{"topic": "announced"}]})
        async with running_worker(server, app):
            task = await c.submit({"function": "announce", "args": ["hello"]})
            await wait_for(lambda: len(heard) == 2, timeout=10)
        [delivery] = await c.tasks.notifications(task.id)
        assert delivery.url == "topic:announced" and delivery.state == "delivered"
    assert sorted(heard) == [("left", "HELLO"), ("right", "HELLO")]


async def test_a_destination_names_a_function_or_a_topic(server: Running) -> None:
    async with AsyncClient(server.url, server.api_key) as c:
        for bad in ({}, {"function": "double", "topic": "t"}):
            with pytest.raises(sluice.RemoteError) as refused:
                await c.functions.set("announce", {"destinations": [bad]})
            assert (refused.value.status, refused.value.code) == (422, "invalid_destination")


async def test_a_failed_attempt_and_the_death_each_start_the_failure_function(
    server: Running,
) -> None:
    """On failure (each failed attempt) and on death, set by the operator's config."""
    async with AsyncClient(server.url, server.api_key) as c:
        await c.functions.set(
            "flaky", {"destinations": [{"function": "mourn", "events": ["failed", "dead"]}]}
        )
        async with running_worker(server, app):
            task = await c.submit({"function": "flaky", "args": [7]})
            await wait_for(lambda: len(mourned) >= 2, timeout=10)
        assert (await c.get(task.id)).state == "dead"
        shown = await c.get(task.id)
        assert len(shown.next) == 2  # the task detail links both
    got = sorted((m["event"], m["attempt"], m["task_id"]) for m in mourned)
    assert got == [("dead", 2, task.id), ("failed", 1, task.id)]
    assert all("bad 7" in m["error"] for m in mourned)


async def test_a_topic_delivery_tried_again_never_fans_out_twice(server: Running) -> None:
    headers = {"authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        for name in ("left", "right"):
            put = await http.put(
                f"/v1/subscriptions/to-{name}", json={"topic": "announced", "function": name}
            )
            assert put.status_code == 200, put.text
    async with AsyncClient(server.url, server.api_key) as c:
        await c.functions.set("announce", {"destinations": [{"topic": "announced"}]})
        async with running_worker(server, app):
            task = await c.submit({"function": "announce", "args": ["once"]})
            await wait_for(lambda: len(heard) == 2, timeout=10)
            # The fan-out ran; its try is settled a moment later. Only then is the row
            # read and put back (a read before the settle is fenced off by its tries:
            # CI, 'assert False').
            await wait_for(lambda: _delivered(c, task.id), timeout=10)
            # As if the server had died between the publish and the settle.
            store = server.node.store
            [row] = await store.list_notifications(server.tenant_id, task.id)
            now = server.node.clock.now()
            assert await store.settle_notification(row, "pending", now, now, None, None)
            await wait_for(lambda: _retried(c, task.id), timeout=10)
        [again] = await c.tasks.notifications(task.id)
        assert again.state == "delivered" and again.tries == 3
        for name in ("left", "right"):
            assert len([t async for t in c.tasks.list(function=name)]) == 1
    assert sorted(heard) == [("left", "ONCE"), ("right", "ONCE")]
