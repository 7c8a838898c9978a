"""Listing by selector with cursor pages, delete, and the bulk verbs, over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

import sluice
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("selectors")


@app.task
async def job(n: int) -> int:
    return n


@app.task
async def other(n: int) -> int:
    return n


@app.task(retry=sluice.RetryPolicy(max_attempts=1))
async def doomed(n: int) -> None:
    raise sluice.Reject(f"no {n}")


@pytest.fixture
async def server(tmp_path: Path):
    async with running_server(tmp_path, app) as running:
        client = sluice.Client(running.url, running.api_key)
        running.client = client  # type: ignore[attr-defined]
        yield running
        client.close()


def call(method, /, *args, **kwargs):  # the sync client, off the server's event loop
    return asyncio.to_thread(method, *args, **kwargs)


async def test_listing_pages_through_every_match_newest_first(server) -> None:
    client = server.client
    ids = [o.id for o in await call(client.submit_many, [
        {"function": "job", "args": [i], "tags": ["even"] if i % 2 == 0 else ["odd"],
         "priority": i % 10}
        for i in range(250)
    ])]  # fmt: skip
    await call(client.submit_many, [{"function": "other", "args": [i]} for i in range(30)])

    everything = await call(lambda: list(client.tasks(function="job", page_size=40)))
    assert [t.id for t in everything] == list(reversed(ids))
    even = await call(lambda: list(client.tasks(function="job", tags=["even"], page_size=33)))
    assert len(even) == 125 and all(t.tags == ["even"] for t in even)
    urgent = await call(lambda: list(client.tasks(priority_min=8)))
    assert len(urgent) == 50 and {t.priority for t in urgent} == {8, 9}
    both = await call(lambda: list(client.tasks(function=["job", "other"], state="ready")))
    assert len(both) == 280


async def test_bulk_cancel_and_delete_count_what_they_did_in_chunks(server) -> None:
    client = server.client
    for start in range(0, 2500, 1000):
        await call(client.submit_many, [
            {"function": "job", "args": [i], "tags": ["bulk"]}
            for i in range(start, min(2500, start + 1000))
        ])  # fmt: skip
    await call(client.submit, {"function": "job", "args": [-1]})  # untagged: untouched

    assert await call(client.cancel_where, tags=["bulk"]) == 2500
    assert await call(client.cancel_where, tags=["bulk"]) == 0  # already ended
    assert server.count("state = 'cancelled'") == 2500
    assert await call(client.delete_where, state="cancelled") == 2500
    assert server.count() == 1


async def test_bulk_retry_runs_dead_tasks_again(server) -> None:
    async with running_worker(server, app):
        outcomes = await call(
            server.client.submit_many, [{"function": "doomed", "args": [i]} for i in range(5)]
        )
        await wait_for(lambda: server.count("state = 'dead'") == 5)
        assert await call(server.client.retry_where, function="doomed", state="dead") == 5
        await wait_for(lambda: server.count("state = 'dead'") == 5)
    task = await call(server.client.get, outcomes[0].id)
    assert len(task.attempts) == 2


async def test_delete_removes_a_task_but_not_a_running_one(server) -> None:
    client = server.client
    done = await call(client.submit, {"function": "job", "args": [1]})
    await call(client.delete, done.id)
    with pytest.raises(sluice.RemoteError) as gone:
        await call(client.get, done.id)
    assert gone.value.status == 404
    assert server.count() == 0


async def test_a_bad_selector_is_refused_with_the_field_at_fault(server) -> None:
    headers = {"authorization": f"Bearer {server.api_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        bad_state = await http.get("/v1/tasks", params={"state": "finished"})
        bad_priority = await http.get("/v1/tasks", params={"priority_min": "12"})
        bad_body = await http.post("/v1/tasks/cancel", json={"selector": {"colour": "red"}})
        bad_limit = await http.get("/v1/tasks", params={"limit": "0"})
    assert (bad_state.status_code, bad_state.json()["error"]["field"]) == (400, "state")
    assert bad_priority.json()["error"]["field"] == "priority_min"
    assert bad_body.status_code == 400
    assert bad_limit.json()["error"]["field"] == "limit"


async def test_another_tenant_sees_and_touches_none_of_it(server) -> None:
    mine = await call(server.client.submit, {"function": "job", "args": [1], "tags": ["t"]})
    other_tenant = await server.node.tenants.ensure("intruder")
    key = await server.node.tenants.create_key(other_tenant.id)
    with sluice.Client(server.url, key) as intruder:
        assert await call(lambda: list(intruder.tasks())) == []
        assert await call(intruder.cancel_where, tags=["t"]) == 0
        assert await call(intruder.delete_where) == 0
        for action in (intruder.get, intruder.cancel, intruder.delete, intruder.retry):
            with pytest.raises(sluice.RemoteError) as refused:
                await call(action, mine.id)
            assert refused.value.status == 404
    assert (await call(server.client.get, mine.id)).state == "ready"


async def test_the_async_client_pages_and_bulk_verbs_like_the_sync_one(server) -> None:
    async with sluice.AsyncClient(server.url, server.api_key) as client:
        await client.submit_many(
            [{"function": "job", "args": [i], "tags": ["a"]} for i in range(7)]
        )
        found = [t.id async for t in client.tasks(tags=["a"], page_size=3)]
        assert len(found) == 7
        assert await client.cancel_where(tags=["a"]) == 7
        assert await client.delete_where(state="cancelled") == 7
        assert [t async for t in client.tasks()] == []
        assert [t async for t in client.dead()] == []


async def test_a_bulk_verb_over_100k_tasks_counts_them_all_and_never_blocks_the_server(
    server,
) -> None:
    async with sluice.AsyncClient(server.url, server.api_key) as client:
        specs = [{"function": "job", "args": [i], "tags": ["flood"]} for i in range(1000)]
        for _ in range(50):  # 100,000 tasks, two batches in flight
            await asyncio.gather(client.submit_many(specs), client.submit_many(specs))
        assert server.count("state = 'ready'") == 100_000

        bulk = asyncio.create_task(client.cancel_where(tags=["flood"]))
        # The server keeps answering while the bulk verb works through its chunks. (One
        # probe at a time: this test's client shares the server's process and its GIL.)
        async with httpx.AsyncClient(base_url=server.url) as probe:
            await wait_for(lambda: server.count("state = 'cancelled'") > 0, timeout=30)
            assert not bulk.done()
            assert (await probe.get("/v1/health")).status_code == 200
        assert await bulk == 100_000
    assert server.count("state = 'cancelled'") == 100_000


async def test_another_tenant_cannot_stream_list_or_configure_this_one(server) -> None:
    mine = await call(server.client.submit, {"function": "job", "args": [1]})
    other_tenant = await server.node.tenants.ensure("outsider")
    key = await server.node.tenants.create_key(other_tenant.id)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        events = await http.get(f"/v1/tasks/{mine.id}/events")
        assert events.status_code == 404
        assert (await http.get("/v1/dead")).json()["tasks"] == []
        assert (await http.get("/v1/functions")).json()["functions"] == []
        submitted = await http.post("/v1/tasks", json={"function": "job"})
        assert submitted.json()["error"]["code"] == "unknown_function"
        named = await http.get("/v1/functions/job")
        assert named.status_code == 404
        assert named.json()["error"]["code"] == "unknown_function"
        retried = await http.post("/v1/dead/retry", json={})
        assert retried.json() == {"retried": 0}
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {server.api_key}"}
    ) as http:
        assert (await http.get("/v1/functions/job")).json()["name"] == "job"
