"""Event triggers end to end: an event posted to a topic makes one task per subscribed
function whose filter it passes, the same event posted twice makes no more, and other
tenants neither see the subscriptions nor trigger them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import sluice
from sluice.engine.topics import MAX_TOPIC_SUBSCRIPTIONS
from tests.harness import running_server, running_worker, wait_for

app = sluice.App("events")
seen: list[tuple[str, dict[str, Any]]] = []


@app.task
async def welcome(event: dict[str, Any]) -> str:
    seen.append(("welcome", event))
    return str(event["user"])


@app.task
async def audit(event: dict[str, Any]) -> None:
    seen.append(("audit", event))


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    seen.clear()
    async with running_server(tmp_path, app, backend) as running:
        yield running


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_an_event_fans_out_to_matching_subscriptions_once_per_event_id(server) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
        running_worker(server, app),
    ):
        for name, body in (
            ("greet", {"topic": "user.created", "function": "welcome",
                       "filter": {"plan": ["pro", "team"]}}),
            ("log-all", {"topic": "user.created", "function": "audit"}),
            ("elsewhere", {"topic": "order.paid", "function": "audit"}),
        ):  # fmt: skip
            made = await http.put(f"/v1/subscriptions/{name}", json=body)
            assert made.status_code == 200, made.text

        pro = await http.post(
            "/v1/events/user.created", json={"id": "e1", "user": 7, "plan": "pro"}
        )
        again = await http.post(
            "/v1/events/user.created", json={"id": "e1", "user": 7, "plan": "pro"}
        )
        free = await http.post(
            "/v1/events/user.created", json={"id": "e2", "user": 8, "plan": "free"}
        )
        nobody = await http.post("/v1/events/user.deleted", json={"user": 9})

        first = pro.json()
        assert first["id"] == "e1"
        assert sorted((t["subscription"], t["created"]) for t in first["tasks"]) == [
            ("greet", True), ("log-all", True),
        ]  # fmt: skip
        assert sorted(t["id"] for t in again.json()["tasks"]) == sorted(
            t["id"] for t in first["tasks"]
        )
        assert all(not t["created"] for t in again.json()["tasks"])
        assert [t["subscription"] for t in free.json()["tasks"]] == ["log-all"]
        assert nobody.json()["tasks"] == [] and nobody.json()["id"]
        await wait_for(lambda: len(seen) == 3)
        assert sorted((fn, e["id"]) for fn, e in seen) == [
            ("audit", "e1"), ("audit", "e2"), ("welcome", "e1"),
        ]  # fmt: skip
        assert server.count() == 3

        listed = (await http.get("/v1/subscriptions")).json()["subscriptions"]
        assert [s["name"] for s in listed] == ["elsewhere", "greet", "log-all"]
        assert (await http.delete("/v1/subscriptions/greet")).status_code == 204
        later = await http.post(
            "/v1/events/user.created", json={"id": "e3", "user": 1, "plan": "pro"}
        )
        assert [t["subscription"] for t in later.json()["tasks"]] == ["log-all"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "field"),
    [
        ("/v1/subscriptions/s", {"topic": "t", "function": "nope"}, 404, "unknown_function",
         "function"),
        ("/v1/subscriptions/s", {"topic": "bad topic", "function": "audit"}, 400,
         "invalid_request", "topic"),
        ("/v1/subscriptions/s", {"topic": "t", "function": "audit", "priority": 11}, 400,
         "invalid_request", "priority"),
        ("/v1/subscriptions/s", {"topic": "t"}, 400, "invalid_request", None),
        ("/v1/events/t", {"id": 5}, 400, "invalid_request", "id"),
        ("/v1/events/t", [1, 2], 400, "invalid_request", None),
    ],
)  # fmt: skip
async def test_malformed_subscriptions_and_events_are_refused(
    tmp_path: Path, path: str, body: Any, status: int, code: str, field: str | None
) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        answer = await http.request("PUT" if "subscriptions" in path else "POST", path, json=body)

        assert answer.status_code == status, answer.text
        assert answer.json()["error"]["code"] == code
        if field is not None:
            assert answer.json()["error"]["field"] == field
        assert (await http.get("/v1/subscriptions")).json()["subscriptions"] == []
        assert server.count() == 0


async def test_another_tenants_events_and_subscriptions_stay_apart(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as server:
        other = await server.node.tenants.ensure("outsider")
        theirs = auth(await server.node.tenants.create_key(other.id))
        async with httpx.AsyncClient(base_url=server.url) as http:
            made = await http.put(
                "/v1/subscriptions/mine", json={"topic": "t", "function": "audit"},
                headers=auth(server.api_key),
            )  # fmt: skip
            assert made.status_code == 200
            assert (await http.get("/v1/subscriptions", headers=theirs)).json() == {
                "subscriptions": []
            }
            posted = await http.post("/v1/events/t", json={"id": "x"}, headers=theirs)
            assert posted.json()["tasks"] == []
            gone = await http.delete("/v1/subscriptions/mine", headers=theirs)
            assert (gone.status_code, gone.json()["error"]["code"]) == (
                404, "subscription_not_found",
            )  # fmt: skip
        assert server.count() == 0


async def test_a_topics_fan_out_is_bounded_like_a_batch(tmp_path: Path) -> None:
    # One event makes a task per subscription in one commit: 2,000 subscriptions and an
    # event of 100 KB once wrote 200 MB in one go, past every batch limit.
    async with (
        running_server(tmp_path, app, max_batch_bytes=64 * 1024) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        for i in range(MAX_TOPIC_SUBSCRIPTIONS):
            put = await http.put(
                f"/v1/subscriptions/s{i}", json={"topic": "t", "function": "audit"}
            )
            assert put.status_code == 200, put.text
        spec = {"topic": "t", "function": "audit"}
        one_more = await http.put("/v1/subscriptions/extra", json=spec)
        assert one_more.status_code == 409, one_more.text
        assert one_more.json()["error"]["code"] == "too_many_subscriptions"
        again = await http.put("/v1/subscriptions/s0", json={"topic": "t", "function": "welcome"})
        assert again.status_code == 200, again.text  # replacing one is not one more

        event = await http.post("/v1/events/t", json={"blob": "x" * 1000})
        assert event.status_code == 413, event.text
        assert event.json()["error"]["code"] == "fan_out_too_large"
        assert server.count() == 0
        small = await http.post("/v1/events/t", json={"user": "ann"})
        assert small.status_code == 200, small.text
        assert server.count() == MAX_TOPIC_SUBSCRIPTIONS
