"""The Python client: namespaces, paging, batch chunking and 429/503 retries.

Paging and namespaces run against a real server; chunking is a pure function; retries
use an in-process transport that answers 429/503 on cue.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
import pytest

import sluice
from sluice.client.calls import (
    _Calls,
    _Response,
    batches,
    pause_selector,
    retry_delay,
    schedule_spec,
)
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("clientapp")


@app.task
def job(n: int) -> int:
    return n


def test_batches_split_by_count_and_by_encoded_size_in_order() -> None:
    specs = [{"function": "job", "args": [i]} for i in range(2500)]
    bodies = batches(specs, 1000, 16 * 1024 * 1024)
    assert [len(json.loads(b)["tasks"]) for b in bodies] == [1000, 1000, 500]
    assert [t["args"][0] for b in bodies for t in json.loads(b)["tasks"]] == list(range(2500))

    big = [{"function": "job", "args": ["x" * 1000]} for _ in range(50)]
    bodies = batches(big, 1000, 10_000)
    assert all(len(b) <= 10_000 for b in bodies)
    assert sum(len(json.loads(b)["tasks"]) for b in bodies) == 50
    assert len(bodies) == 6  # nine ~1 KB tasks fit in 10,000 bytes
    alone = batches([{"function": "job", "args": ["y" * 20_000]}], 1000, 10_000)
    assert len(alone) == 1  # too big for any batch: sent alone, the server says 413


def test_retry_delay_honours_retry_after_with_jitter_and_gives_up() -> None:
    rng = random.Random(7)
    delays = [retry_delay(_Response(429, "2", b""), 0, rng) for _ in range(50)]
    assert all(d is not None and 2.0 <= d <= 3.0 for d in delays)
    assert len(set(delays)) > 1  # jittered
    assert retry_delay(_Response(503, None, b""), 5, rng) is None  # the fifth retry was the last
    assert retry_delay(_Response(500, "1", b""), 0, rng) is None  # only 429 and 503


def test_the_sync_client_waits_out_429_and_503_then_succeeds() -> None:
    answers = [
        httpx.Response(429, headers={"retry-after": "0.1"}, json={}),
        httpx.Response(503, headers={"retry-after": "0.1"}, json={}),
        httpx.Response(200, json={"count": 3}),
    ]
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        return answers[len(seen) - 1]

    client = sluice.Client("http://sluice.test", "sk_x")
    client._http = httpx.Client(
        base_url="http://sluice.test", transport=httpx.MockTransport(handler)
    )
    assert client.tasks.cancel_where(tags=["t"]) == 3
    assert len(seen) == 3
    assert seen[1] - seen[0] >= 0.1 and seen[2] - seen[1] >= 0.1


async def test_tasks_list_walks_every_page_and_namespaces_reach_each_route(
    tmp_path: Path,
) -> None:
    async with running_server(tmp_path, app) as server:
        async with sluice.AsyncClient(server.url, server.api_key) as client:
            made = await client.submit_many(
                [{"function": "job", "args": [i], "tags": ["p"]} for i in range(250)],
                max_count=100,  # three batch requests
            )
            assert len({o.id for o in made}) == 250
            listed = [t.id async for t in client.tasks.list(tags=["p"], page_size=40)]
            assert sorted(listed) == sorted(o.id for o in made)
            assert listed == sorted(listed, reverse=True)  # newest first, no repeats
            assert (await client.tasks.get(made[0].id)).args == [0]
            assert [f.name for f in await client.functions.list()] == ["job"]
            assert (await client.functions.set("job", {"priority": 8})).priority == 8
            assert (await client.functions.get("job")).priority == 8
            assert await client.tasks.cancel_where(tags=["p"]) == 250
            assert [t async for t in client.dead.list()] == []

        await asyncio.to_thread(_sync_calls, server.url, server.api_key)


def _sync_calls(url: str, api_key: str) -> None:
    """The sync client, off the event loop that runs the server."""
    with sluice.Client(url, api_key) as sync:
        pages = sync.tasks.list(state="cancelled", page_size=100)
        assert sum(1 for _ in pages) == 250
        assert sum(1 for _ in sync.tasks(state="cancelled")) == 250  # the older call
        with pytest.raises(sluice.RemoteError) as missing:
            sync.functions.get("nope")
        assert (missing.value.status, missing.value.code) == (404, "unknown_function")
        with pytest.raises(TypeError):
            list(sync.tasks.list(colour="red"))
        assert sync.tasks.delete_where(state="cancelled") == 250


def test_schedule_spec_lays_the_keywords_given_over_the_mapping() -> None:
    base = {"function": "job", "cron": "0 3 * * *", "priority": 4}
    spec = schedule_spec(base, cron="*/5 * * * *", timezone="Europe/Berlin", tags=None)
    assert spec == {"function": "job", "cron": "*/5 * * * *", "priority": 4,
                    "timezone": "Europe/Berlin"}  # fmt: skip
    assert schedule_spec(None, function="job") == {"function": "job"}
    assert _Calls.get_schedule("a/b c").request.path == "/v1/schedules/a%2Fb%20c"


async def test_schedules_are_set_listed_read_paused_resumed_and_deleted(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as server:
        async with sluice.AsyncClient(server.url, server.api_key) as client:
            made = await client.schedules.set(
                "nightly", function="job", cron="0 3 * * *", timezone="Europe/Berlin",
                args=[7], tags=["cron"], catchup="latest",
            )  # fmt: skip
            assert (made.name, made.function, made.args, made.tags) == ("nightly", "job", [7],
                                                                       ["cron"])  # fmt: skip
            assert (made.timezone, made.catchup, made.paused) == ("Europe/Berlin", "latest", False)
            assert made.next_fire_at is not None and made.next_fire_at > time.time()
            await client.schedules.set("hourly", {"function": "job", "cron": "0 * * * *"})
            assert [s.name for s in await client.schedules.list()] == ["hourly", "nightly"]
            assert await client.schedules.get("nightly") == made

            paused = await client.schedules.pause("nightly")
            assert paused.paused and (await client.schedules.get("nightly")).paused
            assert not (await client.schedules.resume("nightly")).paused
            await client.schedules.delete("nightly")
            with pytest.raises(sluice.RemoteError) as missing:
                await client.schedules.get("nightly")
            assert (missing.value.status, missing.value.code) == (404, "schedule_not_found")

        await asyncio.to_thread(_sync_schedule_calls, server.url, server.api_key)


def _sync_schedule_calls(url: str, api_key: str) -> None:
    with sluice.Client(url, api_key) as sync:
        assert [s.name for s in sync.schedules.list()] == ["hourly"]
        replaced = sync.schedules.set("hourly", function="job", cron="30 * * * *", priority=8)
        assert (replaced.cron, replaced.priority, replaced.timezone) == ("30 * * * *", 8, "UTC")
        with pytest.raises(sluice.RemoteError) as bad:
            sync.schedules.set("hourly", function="job", cron="61 * * * *")
        assert (bad.value.status, bad.value.code, bad.value.field) == (422, "invalid_cron",
                                                                      "cron")  # fmt: skip
        with pytest.raises(sluice.RemoteError) as unknown:
            sync.schedules.set("other", function="nope", cron="* * * * *")
        assert (unknown.value.status, unknown.value.code) == (404, "unknown_function")
        with pytest.raises(sluice.RemoteError) as gone:
            sync.schedules.delete("nightly")
        assert gone.value.code == "schedule_not_found"
        sync.schedules.delete("hourly")
        assert sync.schedules.list() == []


async def test_an_every_second_schedule_submits_keyed_tasks(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as server,
        sluice.AsyncClient(server.url, server.api_key) as client,
    ):
        await client.schedules.set("tick", function="job", cron="* * * * * *", args=[1])

        async def fired() -> list[sluice.client.TaskSummary]:
            return [t async for t in client.tasks.list(function="job")]

        tasks = await wait_for(lambda: _at_least(2, fired()), timeout=10)
        keys = sorted(t.key or "" for t in tasks)
        assert all(k.startswith("sluice:cron:tick:") for k in keys)
        seconds = [int(k.rsplit(":", 1)[1]) for k in keys]
        assert len(set(seconds)) == len(seconds)  # one task per fire time
        assert all(t.tags == [] for t in tasks)
        schedule = await client.schedules.get("tick")
        assert schedule.fired >= 2
        assert schedule.next_fire_at is not None and schedule.next_fire_at > schedule.last_fire_at


async def _at_least(n: int, found: Awaitable[list[Any]]) -> list[Any] | None:
    items = await found
    return items if len(items) >= n else None


def test_a_pause_selector_takes_a_value_or_a_list_and_only_pause_fields() -> None:
    assert pause_selector({"function": "job", "tags": ("a", "b"), "priority_min": None}) == {
        "function": ["job"], "tags": ["a", "b"]}  # fmt: skip
    with pytest.raises(TypeError):
        pause_selector({"state": "ready"})
    assert _Calls.delete_pause("a/b").request.path == "/v1/pauses/a%2Fb"


async def test_a_pause_holds_matching_tasks_until_it_is_deleted(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as server,
        sluice.AsyncClient(server.url, server.api_key) as client,
    ):
        before = await client.submit({"function": "job", "args": [1], "tags": ["hold"]})
        pause = await client.pauses.create(tags="hold", priority_min=0)
        assert (pause.selector.tags, pause.selector.priority_min, pause.held) == (["hold"], 0, 1)
        assert pause.selector.function is None
        assert (await client.tasks.get(before.id)).state == "paused"
        assert [(p.id, p.held) for p in await client.pauses.list()] == [(pause.id, None)]

        async with running_worker(server, app):
            after = await client.submit({"function": "job", "args": [2], "tags": ["hold"]})
            assert after.state == "paused"
            free = await client.submit({"function": "job", "args": [3]})
            assert (await client.wait(free.id, 10)).state == "succeeded"
            states = [(await client.tasks.get(i)).state for i in (before.id, after.id)]
            assert states == ["paused", "paused"]  # the worker was free; they were held

            assert await client.pauses.delete(pause.id) == 2
            for task_id in (before.id, after.id):
                assert (await client.wait(task_id, 10)).state == "succeeded"
        assert await client.pauses.list() == []
        with pytest.raises(sluice.RemoteError) as gone:
            await client.pauses.resume(pause.id)
        assert (gone.value.status, gone.value.code) == (404, "pause_not_found")

        await asyncio.to_thread(_sync_pause_calls, server.url, server.api_key)


def _sync_pause_calls(url: str, api_key: str) -> None:
    with sluice.Client(url, api_key) as sync:
        made = sync.pauses.create(function="job")
        assert (made.selector.function, made.held) == (["job"], 0)
        assert [p.id for p in sync.pauses.list()] == [made.id]
        held = sync.submit({"function": "job", "args": [4]})
        assert held.state == "paused"
        assert sync.pauses.resume(made.id) == 1
        with pytest.raises(sluice.RemoteError) as empty:
            sync.pauses.create()
        assert (empty.value.status, empty.value.field) == (400, "selector")
        with pytest.raises(sluice.RemoteError) as bad:
            sync.pauses.create(priority_max=12)
        assert (bad.value.status, bad.value.field) == (400, "selector.priority_max")
        with pytest.raises(sluice.RemoteError) as missing:
            sync.pauses.delete("no-such-pause")
        assert (missing.value.status, missing.value.code) == (404, "pause_not_found")
        assert sync.pauses.list() == []
