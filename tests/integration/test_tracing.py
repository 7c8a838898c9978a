"""Tracing across the queue (OBSERVABILITY §3.3), end to end on SQLite and PostgreSQL: a
real server and a real worker in this process, each handed its own tracer provider with
an in-memory exporter (OpenTelemetry's global provider is never set, so no state leaks
into other tests), and a subprocess that shows tracing off imports nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import sluice
from sluice.client import AsyncClient
from sluice.config import Settings
from sluice.engine.node import Node
from tests.harness import FAST, Running, _serving, database_for, free_port, running_worker
from tests.harness import wait_for as wait_until

app = sluice.App("tracing")
calls: dict[str, int] = {}
tracers: dict[str, trace.Tracer] = {}  # the test's tracer, for spans made inside handlers
FAST_RETRY = sluice.RetryPolicy(max_attempts=3, base_s=0.01, min_backoff_s=0.0, cap_s=0.05)


def _fail_first(name: str) -> str:
    logging.getLogger("traced").warning("attempt of %s", name)  # in the attempt's span
    with tracers["test"].start_as_current_span("handler-work"):
        calls[name] = calls.get(name, 0) + 1
        if calls[name] == 1:
            raise RuntimeError("first attempt fails")
        return "ok"


@app.task(retry=FAST_RETRY)
async def flaky_async(name: str) -> str:
    return _fail_first(name)


@app.task(retry=FAST_RETRY)
def flaky_sync(name: str) -> str:  # runs in a pool thread, in a copy of the context
    return _fail_first(name)


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracers["test"] = provider.get_tracer("test")
    try:
        yield provider, exporter
    finally:
        tracers.clear()
        provider.shutdown()


@contextlib.asynccontextmanager
async def traced_server(
    tmp_path: Path, backend: str, provider: TracerProvider | None, **overrides: Any
) -> AsyncIterator[Running]:
    async with database_for(backend, tmp_path) as database:
        settings = Settings.from_env({}, database=database, **{**FAST, **overrides})
        node = Node(settings, tracer_provider=provider)
        await node.start()
        try:
            async with _serving(node, settings, app) as running:
                yield running
        finally:
            await node.stop()


def _by_id(finished: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in finished if s.context is not None}


def _reaches(span: ReadableSpan, root: ReadableSpan, by_id: dict[int, ReadableSpan]) -> bool:
    while span.parent is not None:
        if span.parent.span_id == root.context.span_id:
            return True
        span = by_id[span.parent.span_id]
    return False


@pytest.mark.parametrize("function", ["flaky_async", "flaky_sync"])
async def test_the_span_tree_of_a_task_that_failed_once_then_succeeded(
    tmp_path: Path, backend: str, function: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    name = f"{function}-{backend}-{time.monotonic_ns()}"
    async with (
        traced_server(tmp_path, backend, provider) as server,
        running_worker(server, app, tracer_provider=provider),
        AsyncClient(server.url, server.api_key, tracer_provider=provider) as client,
    ):
        with tracers["test"].start_as_current_span("submit-root"):
            task = await client.submit({"function": function, "args": [name]})
        done = await client.wait(task.id, timeout=10)
        assert done.state == "succeeded" and done.attempt == 2
        logged = [line async for line in client.tasks.logs(task.id)]

        def named(prefix: str) -> list[ReadableSpan]:
            return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]

        await wait_until(lambda: len(named("process")) == 2 and len(named("handler-work")) == 2)

    finished = exporter.get_finished_spans()
    by_id = _by_id(finished)
    (root,) = [s for s in finished if s.name == "submit-root"]
    assert root.parent is None
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}
    assert all(_reaches(s, root, by_id) for s in finished if s is not root)

    (send,) = [s for s in finished if s.name == f"send {function}"]
    assert send.kind == SpanKind.PRODUCER and send.parent.span_id == root.context.span_id
    assert send.attributes["messaging.message.id"] == task.id

    process = sorted(
        (s for s in finished if s.name == f"process {function}"),
        key=lambda s: s.attributes["sluice.task.attempt"],
    )
    assert [s.attributes["sluice.task.attempt"] for s in process] == [1, 2]
    first, second = process
    for span in process:
        assert span.kind == SpanKind.CONSUMER
        assert span.parent.span_id == send.context.span_id
        assert [link.context.span_id for link in span.links] == [send.context.span_id]
        assert span.attributes["messaging.system"] == "sluice"
        assert span.attributes["messaging.message.id"] == task.id
    assert first.status.status_code == StatusCode.ERROR
    assert first.attributes["error.type"] == "RuntimeError"
    assert second.status.status_code != StatusCode.ERROR
    assert "error.type" not in second.attributes

    # Each attempt's log line names the attempt's span.
    assert [(line.extra["trace_id"], line.extra["span_id"]) for line in logged] == [
        (f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}") for s in process
    ]
    # The handler's own span nests under its attempt's, for async and thread handlers.
    work = [s for s in finished if s.name == "handler-work"]
    assert sorted(s.parent.span_id for s in work) == sorted(s.context.span_id for s in process)
    # The server's spans: a wait and a dispatch per attempt, under the creation context.
    for kind in ("wait", "dispatch"):
        server_spans = [s for s in finished if s.name == f"{kind} {function}"]
        assert len(server_spans) == 2, kind
        assert {s.parent.span_id for s in server_spans} == {send.context.span_id}
    for wait in (s for s in finished if s.name == f"wait {function}"):
        assert wait.attributes["sluice.synthetic"] is True
        assert wait.start_time <= wait.end_time


class Receiver:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        return web.json_response("done")


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    service = Receiver()
    web_app = web.Application()
    web_app.router.add_post("/hook", service.handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield service, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


async def _put_target(server: Running, name: str, url: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        put = await http.put(
            f"/v1/functions/{name}",
            json={"target": {"url": url, "timeout_s": 2.0}},
            headers={"authorization": f"Bearer {server.api_key}"},
        )
        assert put.status_code == 200, put.text


async def test_an_http_target_receives_the_attempt_s_traceparent_in_the_task_s_trace(
    tmp_path: Path, backend: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    async with (
        traced_server(tmp_path, backend, provider, targets_allow_loopback=True) as server,
        receiver() as (service, url),
        AsyncClient(server.url, server.api_key, tracer_provider=provider) as client,
    ):
        await _put_target(server, "hook", url)
        with tracers["test"].start_as_current_span("submit-root") as root:
            task = await client.submit({"function": "hook"})
        assert (await client.wait(task.id, timeout=10)).state == "succeeded"
        await wait_until(
            lambda: any(s.name == "process hook" for s in exporter.get_finished_spans())
        )

    _version, trace_id, span_id, flags = service.headers[0]["traceparent"].split("-")
    assert int(trace_id, 16) == root.get_span_context().trace_id and int(flags, 16) & 1  # sampled
    (call,) = [s for s in exporter.get_finished_spans() if s.name == "process hook"]
    assert call.kind == SpanKind.CLIENT
    assert int(span_id, 16) == call.context.span_id


async def test_without_server_spans_a_target_receives_the_stored_creation_context(
    tmp_path: Path, backend: str
) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with (
        traced_server(tmp_path, backend, None, targets_allow_loopback=True) as server,
        receiver() as (service, url),
        AsyncClient(server.url, server.api_key) as client,
    ):
        await _put_target(server, "hook", url)
        spec = {"function": "hook", "traceparent": parent, "tracestate": "vendor=abc"}
        task = await client.submit(spec)
        assert (await client.wait(task.id, timeout=10)).state == "succeeded"
    assert service.headers[0]["traceparent"] == parent
    assert service.headers[0]["tracestate"] == "vendor=abc"


async def test_a_single_submit_takes_the_request_s_trace_headers_and_drops_bad_ones(
    tmp_path: Path, backend: str
) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with (
        traced_server(tmp_path, backend, None) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        auth = {"authorization": f"Bearer {server.api_key}"}

        async def submit(**headers: str) -> str:
            body = {"function": "flaky_async", "args": ["x"]}
            answer = await http.post("/v1/tasks", json=body, headers={**auth, **headers})
            assert answer.status_code == 201, answer.text
            return str(answer.json()["id"])

        good = await submit(traceparent=parent, tracestate="vendor=abc")
        bad = await submit(traceparent=f"00-{'0' * 32}-00f067aa0ba902b7-01")
        assert server.count(f"id = '{good}' AND trace_parent = '{parent}'") == 1
        assert server.count(f"id = '{good}' AND trace_state = 'vendor=abc'") == 1
        assert server.count(f"id = '{bad}' AND trace_parent IS NULL") == 1


async def test_the_sync_client_s_batch_carries_one_send_span_s_context(
    tmp_path: Path, backend: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    async with traced_server(tmp_path, backend, None) as server:

        def submit_batch() -> list[str]:
            with (
                sluice.Client(server.url, server.api_key, tracer_provider=provider) as client,
                tracers["test"].start_as_current_span("submit-root"),
            ):
                specs = [{"function": "flaky_async", "args": [f"b{i}"]} for i in range(3)]
                return [o.id for o in client.submit_many(specs)]

        ids = await asyncio.to_thread(submit_batch)
        (send,) = [s for s in exporter.get_finished_spans() if s.name == "send flaky_async"]
        assert send.attributes["messaging.batch.message_count"] == 3
        stored = f"00-{send.context.trace_id:032x}-{send.context.span_id:016x}-%"
        assert server.count(f"trace_parent LIKE '{stored}'") == len(ids) == 3


async def test_a_malformed_traceparent_is_refused_with_the_field_named(
    tmp_path: Path, backend: str
) -> None:
    async with (
        traced_server(tmp_path, backend, None) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        headers = {"authorization": f"Bearer {server.api_key}"}

        async def submit(**fields: str) -> httpx.Response:
            body = {"function": "flaky_async", "args": ["x"], **fields}
            return await http.post("/v1/tasks", json=body, headers=headers)

        shape = await submit(traceparent="00-not-a-trace-context")
        assert shape.status_code == 400 and "traceparent" in shape.text
        zeros = await submit(traceparent=f"00-{'0' * 32}-00f067aa0ba902b7-01")
        assert zeros.status_code == 422, zeros.text
        assert zeros.json()["error"]["code"] == "invalid_traceparent"
        long_state = await submit(
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            tracestate="k=" + "v" * 600,
        )
        assert long_state.status_code == 400


# A producer and a worker with tracing off, in a process of their own, against the
# server of the test: they run a task, then say which OpenTelemetry modules were loaded.
USER_SIDE = """
import asyncio, os, sys
import sluice
from sluice.client import AsyncClient
from sluice.worker.runtime import Worker

app = sluice.App("off")

@app.task
async def double(x: int) -> int:
    return 2 * x

async def main() -> None:
    url, key = os.environ["URL"], os.environ["KEY"]
    worker = Worker(app, url=url, api_key=key, concurrency=1)
    running = asyncio.create_task(worker.run())
    async with AsyncClient(url, key) as client:
        await client.functions.set("double", {})
        task = await client.submit({"function": "double", "args": [21]})
        done = await client.wait(task.id, timeout=10)
        assert done.result == 42, done
    worker.stop()
    running.cancel()
    print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))

asyncio.run(main())
"""


def _loaded(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"')))


async def test_with_tracing_off_the_sdk_and_the_worker_never_import_opentelemetry(
    tmp_path: Path,
) -> None:
    async with traced_server(tmp_path, "sqlite", None) as server:
        env = {**os.environ, "URL": server.url, "KEY": server.api_key}
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", USER_SIDE], capture_output=True,
            text=True, cwd=Path(__file__).parents[2], env=env, timeout=60,
        )  # fmt: skip
    assert _loaded(done) == []


SERVER_SIDE = """
import asyncio, sys, tempfile
from pathlib import Path
import sluice
from sluice.client import AsyncClient
from tests.harness import running_server, running_worker

app = sluice.App("off")

@app.task
async def double(x: int) -> int:
    return 2 * x

async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp), app) as server, running_worker(server, app):
            async with AsyncClient(server.url, server.api_key) as client:
                task = await client.submit({"function": "double", "args": [21]})
                done = await client.wait(task.id, timeout=10)
                assert done.result == 42, done
    print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))

asyncio.run(main())
"""


def test_with_tracing_off_the_server_loads_no_opentelemetry_api() -> None:
    """Litestar, building the application, probes for its own OpenTelemetry plugin when
    the package is installed, and so loads the `opentelemetry.semconv` constants; the API
    (tracer, context, propagation) and the SDK are never loaded."""
    done = subprocess.run(
        [sys.executable, "-c", SERVER_SIDE], capture_output=True, text=True,
        cwd=Path(__file__).parents[2], timeout=60,
    )  # fmt: skip
    loaded = _loaded(done)
    assert all(m == "opentelemetry" or m.startswith("opentelemetry.semconv") for m in loaded)
