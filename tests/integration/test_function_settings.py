"""Function settings have owners (issue 19, point 3): the decorator gives defaults, an
operator's setting wins and survives any worker reconnecting, a read says where each
field came from, and a reset returns a field to the code's value."""

from __future__ import annotations

from pathlib import Path

import pytest

import sluice
from sluice.errors import RemoteError
from tests.harness import running_server, running_worker

app = sluice.App("owners")


@app.task(timeout=5, priority=3, rate=100.0)
def send(n: int) -> int:
    return n


@pytest.fixture
async def server(tmp_path: Path, backend: str):
    async with running_server(tmp_path, app, backend) as running:
        yield running


async def test_an_operators_setting_survives_workers_reconnecting_and_reset_restores_the_code(
    server,
) -> None:
    client = sluice.AsyncClient(server.url, server.api_key)
    try:
        await client.functions.set("send", {"timeout_s": 60.0, "rate": 2.0})
        for _ in range(2):  # a worker connects, leaves, and connects again
            async with running_worker(server, app):
                function = await client.functions.get("send")
                assert (function.timeout_s, function.rate, function.priority) == (60.0, 2.0, 3)
        assert function.sources["timeout_s"] == "operator"
        assert function.sources["rate"] == "operator"
        assert function.sources["priority"] == "code"
        # The node's limits follow the effective config, not the hello's.
        cached = server.node.functions.cached(server.tenant_id, "send")
        assert cached is not None and cached.rate == 2.0

        reset = await client.functions.reset("send", "rate")
        assert (reset.rate, reset.sources["rate"]) == (100.0, "code")
        assert (reset.timeout_s, reset.sources["timeout_s"]) == (60.0, "operator")
        # A later PUT replaces the operator's settings: what it leaves out follows code.
        await client.functions.set("send", {"priority": 9})
        again = await client.functions.get("send")
        assert (again.priority, again.timeout_s) == (9, 5.0)
        assert [f for f, s in again.sources.items() if s == "operator"] == ["priority"]
    finally:
        await client.aclose()


async def test_a_function_no_code_registered_shows_defaults_and_reset_refuses_bad_fields(
    server,
) -> None:
    client = sluice.AsyncClient(server.url, server.api_key)
    try:
        await client.functions.set("only_operator", {"priority": 2})
        function = await client.functions.get("only_operator")
        assert function.sources["priority"] == "operator"
        assert function.sources["timeout_s"] == "default"
        with pytest.raises(RemoteError) as bad:
            await client.functions.reset("only_operator", "colour")
        assert (bad.value.status, bad.value.code) == (400, "unknown_setting")
        with pytest.raises(RemoteError) as missing:
            await client.functions.reset("no_such", "priority")
        assert (missing.value.status, missing.value.code) == (404, "unknown_function")
        # The app's registration is the code's: it leaves the operator's setting alone.
        await client.functions.set("send", {"timeout_s": 60.0})
        await client.functions.set("send", {"timeout_s": 1.0, "priority": 4}, code=True)
        function = await client.functions.get("send")
        assert (function.timeout_s, function.priority) == (60.0, 4)
    finally:
        await client.aclose()
