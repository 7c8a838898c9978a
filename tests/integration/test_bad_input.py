"""Every malformed request gets a 4xx with a machine-readable code and a sentence, and
stores nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import sluice
from tests.harness import running_server

app = sluice.App("strict")


@app.task
def echo(x: object) -> object:
    return x


BIG = "x" * (256 * 1024 + 1)

CASES = [
    # (name, path, body bytes, auth, status, code, field)
    ("malformed json", "/v1/tasks", b'{"function": "echo",', True, 400, "malformed_json", None),
    ("not an object", "/v1/tasks", b"[1, 2]", True, 400, "invalid_request", None),
    ("unknown field", "/v1/tasks", b'{"function": "echo", "colour": 1}', True, 400,
     "invalid_request", "colour"),
    ("wrong type", "/v1/tasks", b'{"function": "echo", "priority": "high"}', True, 400,
     "invalid_request", "priority"),
    ("args not a list", "/v1/tasks", b'{"function": "echo", "args": {"a": 1}}', True, 400,
     "invalid_request", "args"),
    ("priority out of range", "/v1/tasks", b'{"function": "echo", "priority": 10}', True, 400,
     "invalid_request", "priority"),
    ("retry policy out of range", "/v1/tasks",
     b'{"function": "echo", "retry": {"max_attempts": 0}}', True, 400, "invalid_request",
     "retry.max_attempts"),
    ("retry policy unknown field", "/v1/tasks",
     b'{"function": "echo", "retry": {"tries": 3}}', True, 400, "invalid_request",
     "retry.tries"),
    ("negative delay", "/v1/tasks", b'{"function": "echo", "delay": -5}', True, 400,
     "invalid_request", "delay"),
    ("oversized payload", "/v1/tasks",
     b'{"function": "echo", "args": ["' + BIG.encode() + b'"]}', True, 413,
     "payload_too_large", "args"),
    ("unknown function", "/v1/tasks", b'{"function": "nope"}', True, 404, "unknown_function",
     "function"),
    ("missing key", "/v1/tasks", b'{"function": "echo"}', None, 401, "missing_key", None),
    ("wrong key", "/v1/tasks", b'{"function": "echo"}', False, 401, "invalid_key", None),
    ("empty batch", "/v1/tasks/batch", b'{"tasks": []}', True, 400, "invalid_request", "tasks"),
    ("batch too large", "/v1/tasks/batch",
     b'{"tasks": [' + b",".join([b'{"function": "echo"}'] * 1001) + b"]}", True, 413,
     "batch_too_large", "tasks"),
    ("one bad task spoils the batch", "/v1/tasks/batch",
     b'{"tasks": [{"function": "echo"}, {"function": "echo", "priority": 99}]}', True, 400,
     "invalid_request", "tasks[1].priority"),
    ("a batch names the task whose function is unknown", "/v1/tasks/batch",
     b'{"tasks": [{"function": "echo"}, {"function": "echo"}, {"function": "nope"}]}', True,
     404, "unknown_function", "tasks[2].function"),
    ("a batch names the task that gives delay and run_at", "/v1/tasks/batch",
     b'{"tasks": [{"function": "echo", "delay": 1, "run_at": 1}, {"function": "echo"}]}',
     True, 400, "invalid_request", "tasks[0].delay"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "auth", "status", "code", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
async def test_bad_submit_is_refused_clearly_and_stores_nothing(
    tmp_path: Path, path: str, body: bytes, auth: bool | None, status: int, code: str,
    field: str | None,
) -> None:  # fmt: skip
    async with running_server(tmp_path, app) as server:
        headers = {"content-type": "application/json"}
        if auth is True:
            headers["authorization"] = f"Bearer {server.api_key}"
        elif auth is False:
            headers["authorization"] = "Bearer sk_not-a-real-key"
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post(path, content=body, headers=headers)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["status"] == status
        assert error["code"] == code
        assert len(error["message"]) > 10
        assert error.get("field") == field
        assert server.count() == 0


async def test_a_rate_too_slow_to_compute_with_is_refused(tmp_path: Path) -> None:
    # 1e-320 passed `> 0`; its 1 / rate is infinite and its limit's arithmetic NaN,
    # which failed the dispatch rounds of every tenant on the node.
    async with running_server(tmp_path, app, admin_key="admin-rate") as server:
        tenant = {"authorization": f"Bearer {server.api_key}"}
        admin = {"authorization": "Bearer admin-rate"}
        async with httpx.AsyncClient(base_url=server.url) as http:
            for path, headers in ((f"/v1/functions/{echo.name}", tenant),
                                  (f"/v1/tenants/{server.tenant_id}/quota", admin)):  # fmt: skip
                for rate in (1e-320, 0, 1e-10):
                    put = await http.put(path, json={"rate": rate}, headers=headers)
                    assert put.status_code == 400, (path, rate, put.text)
                    assert put.json()["error"]["field"] == "rate"
                ok = await http.put(path, json={"rate": 1e-9}, headers=headers)
                assert ok.status_code == 200, ok.text


async def test_reading_another_tenants_task_is_not_found(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as server:
        other = await server.node.tenants.ensure("other")
        other_key = await server.node.tenants.create_key(other.id)
        async with httpx.AsyncClient(base_url=server.url) as http:
            mine = await http.post(
                "/v1/tasks",
                json={"function": "echo", "args": [1]},
                headers={"authorization": f"Bearer {server.api_key}"},
            )
            assert mine.status_code == 201
            task_id = mine.json()["id"]
            for path in (f"/v1/tasks/{task_id}", f"/v1/tasks/{task_id}/result?timeout=0"):
                theirs = await http.get(path, headers={"authorization": f"Bearer {other_key}"})
                assert theirs.status_code == 404
                assert theirs.json()["error"]["code"] == "task_not_found"
                assert task_id not in theirs.text.replace(f"no task {task_id}", "")


async def test_unknown_route_and_bad_wait_timeout_use_the_error_format(tmp_path: Path) -> None:
    async with running_server(tmp_path, app) as server:
        auth = {"authorization": f"Bearer {server.api_key}"}
        async with httpx.AsyncClient(base_url=server.url) as http:
            missing = await http.get("/v1/nothing-here", headers=auth)
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "not_found"
            bad = await http.get("/v1/tasks/x/result?timeout=soon", headers=auth)
            assert bad.status_code == 400
            assert bad.json()["error"]["field"] == "timeout"
