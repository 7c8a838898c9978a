"""What probing as an attacker and as a careless client found (issue 14): every such input
gets a 4xx with a machine-readable code and a sentence, and stores nothing; a config a
tenant sets never breaks its later submits; hostile worker frames close the connection
with a log line and change nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import websockets

import sluice
from sluice.protocol import WORKER_PATH
from tests.harness import Running, running_server

app = sluice.App("hostile")
ADMIN = "sk_admin_hostile-test-only"


@app.task
def echo(x: object = None) -> object:
    return x


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", "content-type": "application/json"}


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["status"], error["code"]) == (status, code)
    assert len(error["message"]) > 10
    return error


DEEP = [1000, 3000]


@pytest.mark.parametrize("depth", [101, *DEEP])
async def test_deeply_nested_json_is_refused_everywhere_and_stores_nothing(
    tmp_path: Path, depth: int
) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        deep = nested(depth)
        bodies = [
            ("/v1/tasks", b'{"function": "echo", "args": ' + deep + b"}"),
            ("/v1/tasks", b'{"function": "echo", "kwargs": {"x": ' + deep + b"}}"),
            ("/v1/tasks/batch", b'{"tasks": [{"function": "echo", "args": ' + deep + b"}]}"),
            ("/v1/events/orders", b'{"id": "e1", "items": ' + deep + b"}"),
        ]
        for path, body in bodies:
            assert_refused(await http.post(path, content=body), 422, "too_deep")
        schedule = b'{"function": "echo", "cron": "* * * * *", "args": ' + deep + b"}"
        assert_refused(await http.put("/v1/schedules/deep", content=schedule), 422, "too_deep")
        assert server.count() == 0
        assert (await http.get("/v1/schedules")).json()["schedules"] == []


async def test_a_value_at_the_depth_limit_is_served_back_intact(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        body = b'{"function": "echo", "args": ' + nested(100) + b"}"
        created = await http.post("/v1/tasks", content=body)
        assert created.status_code == 201, created.text
        read = await http.get(f"/v1/tasks/{created.json()['id']}")
        assert read.status_code == 200
        assert read.json()["args"] == msgspec.json.decode(nested(100))


@pytest.mark.parametrize(
    "query",
    ["priority_min=inf", "priority_min=nan", "priority_min=1e400", "priority_max=-inf",
     "created_after=nan", "limit=inf", "limit=1e400"],
)  # fmt: skip
async def test_numbers_that_are_not_finite_are_refused(tmp_path: Path, query: str) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        error = assert_refused(await http.get(f"/v1/tasks?{query}"), 400, "invalid_request")
        assert error["field"] == query.partition("=")[0]
        value = query.partition("=")[2]
        for name in ("since", "until", "limit"):
            assert_refused(await http.get(f"/v1/dead?{name}={value}"), 400, "invalid_request")


async def test_an_empty_priority_range_is_a_rule_the_schema_cannot_state(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        error = assert_refused(
            await http.get("/v1/tasks?priority_min=7&priority_max=2"), 422, "empty_range"
        )
        assert error["field"] == "priority_min"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"ttl_s": 0}, "ttl_s"),
        ({"tags": [f"t{i}" for i in range(17)]}, "tags"),
        ({"tags": ["x" * 5000]}, "tags"),
        ({"tags": [""]}, "tags[0]"),
        ({"priority": 10}, "priority"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
        ({"retry": {"base_s": -1}}, "retry.base_s"),
        ({"rate": 0}, "rate"),
        ({"burst": 0}, "burst"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ],
)
async def test_a_function_config_is_held_to_the_rules_of_a_submit(
    tmp_path: Path, config: dict[str, Any], field: str
) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        error = assert_refused(await http.put("/v1/functions/echo", json=config), 400,
                               "invalid_request")  # fmt: skip
        assert error["field"] == field
        # The refused config did not land: submits to the function still work.
        submitted = await http.post("/v1/tasks", json={"function": "echo", "args": [1]})
        assert submitted.status_code == 201, submitted.text


@pytest.mark.parametrize(
    "name",
    [
        "\uff11\uff12\uff13",
        "acme\u0663",
        "caf\u00e9",
        "a b",
        "-leading",
        "x" * 65,
        "",
        "a/b",
        "a\x00b",
    ],
)
async def test_tenant_names_are_ascii_letters_digits_dash_and_underscore(
    tmp_path: Path, name: str
) -> None:
    async with (
        running_server(tmp_path, app, admin_key=ADMIN) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(ADMIN)) as http,
    ):
        error = assert_refused(await http.post("/v1/tenants", json={"name": name}), 400,
                               "invalid_request")  # fmt: skip
        assert error["field"] == "name"
        names = [t["name"] for t in (await http.get("/v1/tenants")).json()["tenants"]]
        assert names == [app.name]


async def test_admin_routes_answer_404_without_the_admin_key(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app, admin_key=ADMIN) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        for headers in ({}, auth(server.api_key), auth("sk_wrong"), {"authorization": "Basic x"}):
            for method, path in (("GET", "/v1/tenants"), ("POST", "/v1/tenants"),
                                 ("GET", f"/v1/tenants/{server.tenant_id}/quota"),
                                 ("GET", "/metrics")):  # fmt: skip
                response = await http.request(method, path, headers=headers, json={"name": "x"})
                assert_refused(response, 404, "not_found")
        assert (await http.get("/v1/tenants", headers=auth(ADMIN))).status_code == 200


async def test_a_method_a_route_does_not_take_is_405_with_allow(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        for method, path in (("TRACE", "/v1/tasks"), ("PATCH", "/v1/functions/echo"),
                             ("PUT", "/v1/health")):  # fmt: skip
            response = await http.request(method, path)
            assert_refused(response, 405, "method_not_allowed")
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed and method not in allowed


# -- worker frames ---------------------------------------------------------------------


def hello(worker_id: str = "w1", functions: int = 1, **config: Any) -> bytes:
    specs = [{"name": f"f{i}", "config": config} for i in range(functions)]
    return msgspec.json.encode(
        {"t": "hello", "worker_id": worker_id, "slots": 1, "functions": specs}
    )


async def exchange(server: Running, *frames: bytes) -> tuple[int | None, list[bytes]]:
    """Send frames on a worker connection; the close code and what the server sent."""
    url = server.url.replace("http://", "ws://") + WORKER_PATH
    received: list[bytes] = []
    async with websockets.connect(
        url, additional_headers=auth(server.api_key), max_size=None, compression=None
    ) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            async for message in ws:
                received.append(message if isinstance(message, bytes) else message.encode())
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, received


async def functions_of(server: Running) -> list[str]:
    return sorted((await server.node.functions.of(server.tenant_id)).keys())


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (hello("w\x00id"), "worker ids match"),
        (hello("w\u202eid"), "worker ids match"),
        (hello("pool:sneaky"), "may not start with"),
        (hello(functions=501), "at most 500 functions"),
        (hello(timeout_s=-1), "timeout_s"),
        (hello(tags=["x" * 5000]), "each tag"),
    ],
)
async def test_a_hostile_hello_is_refused_and_registers_nothing(
    tmp_path: Path, frame: bytes, why: str
) -> None:
    async with running_server(tmp_path, app) as server:
        before = await functions_of(server)
        code, received = await exchange(server, frame)
        assert code == 4400
        error = msgspec.json.decode(received[0])
        assert error["t"] == "error" and why in error["message"]
        assert await functions_of(server) == before
        assert len(server.node.registry) == 0


async def test_a_hello_over_a_mebibyte_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as server:
        before = await functions_of(server)
        big = hello(functions=1, padding="x" * (1024 * 1024))
        code, _ = await exchange(server, big)
        assert code == 4400
        assert await functions_of(server) == before


async def test_a_tenant_holds_at_most_max_functions(tmp_path: Path) -> None:
    async with running_server(tmp_path, app, max_functions=3) as server:
        code, received = await exchange(server, hello(functions=5))
        assert code == 4400
        assert b"limit of 3" in received[0]
        assert await functions_of(server) == ["echo"]
        async with httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http:
            for name in ("a", "b"):
                assert (await http.put(f"/v1/functions/{name}", json={})).status_code == 200
            assert_refused(await http.put("/v1/functions/c", json={}), 409, "too_many_functions")
            assert (await http.put("/v1/functions/a", json={"priority": 7})).status_code == 200


async def test_a_results_frame_nested_3000_deep_closes_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(tmp_path, app) as server:
        deep = b'{"t": "results", "items": [{"id": "x", "attempt": 1, "outcome": "ok", ' \
               b'"started_at": 1, "finished_at": 2, "result": ' + nested(3000) + b"}]}"  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="sluice.api"):
            code, _ = await exchange(server, hello("deep"), deep)
        assert code == 4400
        assert any("bad frame" in r.getMessage() and "too deep" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
        assert server.count() == 0


async def test_a_second_hello_is_a_protocol_error(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as server:
        code, _ = await exchange(server, hello("twice"), hello("twice", functions=3))
        assert code == 4400
        assert await functions_of(server) == ["echo", "f0"]


async def test_options_names_exactly_the_documented_methods(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, app) as server,
        httpx.AsyncClient(base_url=server.url, headers=auth(server.api_key)) as http,
    ):
        document = (await http.get("/openapi.json")).json()
        for path, item in document["paths"].items():
            concrete = path
            for name in ("task_id", "tenant_id", "key_id", "pause_id", "name", "topic"):
                concrete = concrete.replace("{" + name + "}", "x1")
            answer = await http.options(concrete)
            assert answer.status_code == 204, (path, answer.text)
            allowed = {m.strip() for m in answer.headers["allow"].split(",")}
            assert allowed == {m.upper() for m in item} | {"OPTIONS"}, path
