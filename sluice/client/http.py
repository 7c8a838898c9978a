"""The two clients, `Client` (http.client, wire.py) and `AsyncClient` (aiohttp): they
move bytes and retry 429/503; what is sent and how answers are read is in calls.py, once for both.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ..contract import FunctionConfig, Stats, SubmitOutcome, Task
from ..errors import SluiceError
from ..tracing import otel_loaded
from .calls import (
    BATCH_BYTES,
    BATCH_COUNT,
    _Call,
    _Calls,
    _Pager,
    _Request,
    _Response,
    batches,
    retry_delay,
    task_spec,
)
from .namespaces import (
    AsyncDead,
    AsyncFunctions,
    AsyncKeys,
    AsyncPauses,
    AsyncSchedules,
    AsyncTasks,
    AsyncTenants,
    AsyncWebhooks,
    Dead,
    Functions,
    Keys,
    Pauses,
    Schedules,
    Tasks,
    Tenants,
    Webhooks,
)
from .wire import Wire, proxied

if TYPE_CHECKING:
    import aiohttp
    from opentelemetry.trace import TracerProvider

DEFAULT_URL = "http://127.0.0.1:8420"
DEV_FILE = Path(".sluice") / "dev.json"
T = TypeVar("T")
I = TypeVar("I")  # noqa: E741

__all__ = [
    "DEFAULT_URL", "DEV_FILE", "AsyncClient", "Client", "discover", "task_spec", "tls_context",
]  # fmt: skip


def discover(url: str | None = None, api_key: str | None = None) -> tuple[str, str | None]:
    """Server URL and API key: arguments, then SLUICE_URL / SLUICE_API_KEY, then the
    `.sluice/dev.json` that `sluice dev` writes, then the default local URL."""
    url = url or os.environ.get("SLUICE_URL")
    api_key = api_key or os.environ.get("SLUICE_API_KEY")
    if (url is None or api_key is None) and DEV_FILE.exists():
        dev = json.loads(DEV_FILE.read_text())
        url = url or dev.get("url")
        api_key = api_key or dev.get("api_key")
    return url or DEFAULT_URL, api_key


def tls_context(ca_file: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """How servers are verified: against `ca_file`, else `SLUICE_CA_FILE`, else the
    system's trust store. A CA file replaces the system store; it does not add to it.
    There is no way to turn verification off: give the CA that signed the server."""
    ca_file = ca_file or os.environ.get("SLUICE_CA_FILE") or None
    try:
        # Loading a trust store takes ~20 ms of CPU: a client per request (or 32 clients
        # at once) would spend more on it than on its requests. One context per file
        # version is shared (so it is read-only); a CA file rewritten in place is loaded again.
        version = os.stat(ca_file).st_mtime_ns if ca_file else 0
        return _context(os.fspath(ca_file) if ca_file else None, version)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise SluiceError(f"the CA file {ca_file} cannot be loaded: {exc}") from exc


@functools.lru_cache(maxsize=16)
def _context(ca_file: str | None, version: int) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json", "user-agent": "sluice-python"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


class Client:
    """Synchronous client. `Client()` finds the server like `discover()` does.

    The nouns are namespaces: `client.tasks.list(state="dead")`, `client.dead.retry()`,
    `client.functions.get(name)`, `client.schedules.set(name, function=..., cron=...)`,
    `client.pauses.create(function="report")`, and with the admin key `client.tenants`
    and `client.keys`. Error answers raise `sluice.RemoteError`; 429 and 503 are retried
    after their Retry-After plus jitter, up to five times. An https server's certificate
    is verified as `tls_context(ca_file)` says: `ca_file` names a private CA's bundle.
    """

    def __init__(
        self, url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
        ca_file: str | os.PathLike[str] | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:  # fmt: skip
        self.url, self.api_key = discover(url, api_key)
        self._tracer_provider = tracer_provider  # else OpenTelemetry's global, if imported
        # Above the longest long-poll (`wait`) the server allows, so it answers first.
        headers, timeout, tls = _headers(self.api_key), timeout + 35.0, tls_context(ca_file)
        # Kept-alive http.client connections (wire.py), or httpx where a proxy applies.
        self._http: Wire | httpx.Client = (
            httpx.Client(base_url=self.url, headers=headers, timeout=timeout, verify=tls)
            if proxied(self.url)
            else Wire(self.url, headers, timeout, tls)
        )
        self._rng = random.Random()
        self.tasks = Tasks(self)
        self.dead = Dead(self)
        self.functions = Functions(self)
        self.schedules = Schedules(self)
        self.pauses = Pauses(self)
        self.tenants = Tenants(self)
        self.keys = Keys(self)
        self.webhooks = Webhooks(self)

    def _send(self, request: _Request) -> _Response:
        attempt = 0
        while True:
            if isinstance(self._http, Wire):
                response = _Response(*self._http.request(
                    request.method, request.path, request.body, request.params
                ))  # fmt: skip
            else:
                answer = self._http.request(
                    request.method, request.path, content=request.body, params=request.params
                )
                response = _Response(
                    answer.status_code, answer.headers.get("retry-after"), answer.content
                )
            delay = retry_delay(response, attempt, self._rng)
            if delay is None:
                return response
            time.sleep(delay)
            attempt += 1

    def _run(self, call: _Call[T]) -> T:
        return call.read(self._send(call.request))

    def _pages(self, pager: _Pager[I]) -> Iterator[I]:
        cursor: str | None = ""
        while cursor is not None:
            items, cursor = pager.read(self._send(pager.request(cursor)))
            yield from items

    def submit(self, spec: dict[str, Any]) -> SubmitOutcome:
        """Submit one task: `{"function": ..., "args": [...], "kwargs": {...}, ...}`.
        Inside an OpenTelemetry trace, the task carries it (client/tracing.py)."""
        if self._tracer_provider is None and not otel_loaded():
            return self._run(_Calls.submit(spec))
        from .tracing import sending  # imports OpenTelemetry: only when it is on

        with sending(self._tracer_provider, [spec]) as send:
            outcome = self._run(_Calls.submit(send.specs[0]))
            send.sent([outcome])
            return outcome

    def submit_many(
        self, specs: list[dict[str, Any]], *, max_count: int = BATCH_COUNT,
        max_bytes: int = BATCH_BYTES,
    ) -> list[SubmitOutcome]:  # fmt: skip
        """Submit many tasks, in order, in batches of at most `max_count` tasks and
        `max_bytes` bytes (the server's default limits). Each batch commits on its own:
        if one fails, the batches before it stand (give tasks a `key` to resubmit safely)."""
        if self._tracer_provider is None and not otel_loaded():
            return self._submit_many(specs, max_count, max_bytes)
        from .tracing import sending

        with sending(self._tracer_provider, specs) as send:
            return self._submit_many(send.specs, max_count, max_bytes)

    def _submit_many(
        self, specs: list[dict[str, Any]], max_count: int, max_bytes: int
    ) -> list[SubmitOutcome]:
        out: list[SubmitOutcome] = []
        for body in batches(specs, max_count, max_bytes):
            outcomes = self._run(_Calls.submit_batch(body))
            out.extend(outcomes)
        return out

    def stats(self, minutes: int = 60) -> Stats:
        """The tenant's figures: tasks by state now, and counts per minute over the last
        `minutes` (submitted, started, ended by outcome, mean wait and run time)."""
        return self._run(_Calls.stats(minutes))

    def get(self, task_id: str) -> Task:
        return self.tasks.get(task_id)

    def wait(self, task_id: str, timeout: float) -> Task:
        return self.tasks.wait(task_id, timeout)

    def cancel(self, task_id: str) -> Task:
        return self.tasks.cancel(task_id)

    def retry(self, task_id: str) -> Task:
        return self.tasks.retry(task_id)

    def delete(self, task_id: str) -> None:
        self.tasks.delete(task_id)

    def cancel_where(self, **selector: Any) -> int:
        return self.tasks.cancel_where(**selector)

    def delete_where(self, **selector: Any) -> int:
        return self.tasks.delete_where(**selector)

    def retry_where(self, **selector: Any) -> int:
        return self.tasks.retry_where(**selector)

    def retry_dead(
        self, *, function: str | None = None, since: float | None = None,
        until: float | None = None,
    ) -> int:  # fmt: skip
        return self.dead.retry(function=function, since=since, until=until)

    def put_function(
        self, name: str, settings: Mapping[str, Any], *, code: bool = False
    ) -> FunctionConfig:
        return self.functions.set(name, settings, code=code)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """Asynchronous client with the same namespaces and methods as `Client`.

    It speaks HTTP through aiohttp: on this project's benchmark machine httpx's async
    client managed about 460 submits/s from one process, aiohttp about 3,000/s.
    """

    def __init__(
        self, url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
        ca_file: str | os.PathLike[str] | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:  # fmt: skip
        self.url, self.api_key = discover(url, api_key)
        self._tracer_provider = tracer_provider
        self._timeout = timeout + 35.0
        self._tls = tls_context(ca_file)
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()
        self.tasks = AsyncTasks(self)
        self.dead = AsyncDead(self)
        self.functions = AsyncFunctions(self)
        self.schedules = AsyncSchedules(self)
        self.pauses = AsyncPauses(self)
        self.tenants = AsyncTenants(self)
        self.keys = AsyncKeys(self)
        self.webhooks = AsyncWebhooks(self)

    def _http(self) -> aiohttp.ClientSession:
        import aiohttp  # here, not at the top: it doubles the CLI's start-up time

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                self.url,
                headers=_headers(self.api_key),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(ssl=self._tls),
            )
        return self._session

    async def _send(self, request: _Request) -> _Response:
        attempt = 0
        while True:
            async with self._http().request(
                request.method, request.path, data=request.body, params=request.params
            ) as answer:
                response = _Response(
                    answer.status, answer.headers.get("retry-after"), await answer.read()
                )
            delay = retry_delay(response, attempt, self._rng)
            if delay is None:
                return response
            await asyncio.sleep(delay)
            attempt += 1

    async def _run(self, call: _Call[T]) -> T:
        return call.read(await self._send(call.request))

    async def _pages(self, pager: _Pager[I]) -> AsyncIterator[I]:
        cursor: str | None = ""
        while cursor is not None:
            items, cursor = pager.read(await self._send(pager.request(cursor)))
            for item in items:
                yield item

    async def submit(self, spec: dict[str, Any]) -> SubmitOutcome:
        if self._tracer_provider is None and not otel_loaded():
            return await self._run(_Calls.submit(spec))
        from .tracing import sending

        with sending(self._tracer_provider, [spec]) as send:
            outcome = await self._run(_Calls.submit(send.specs[0]))
            send.sent([outcome])
            return outcome

    async def submit_many(
        self, specs: list[dict[str, Any]], *, max_count: int = BATCH_COUNT,
        max_bytes: int = BATCH_BYTES,
    ) -> list[SubmitOutcome]:  # fmt: skip
        if self._tracer_provider is None and not otel_loaded():
            return await self._submit_many(specs, max_count, max_bytes)
        from .tracing import sending

        with sending(self._tracer_provider, specs) as send:
            return await self._submit_many(send.specs, max_count, max_bytes)

    async def _submit_many(
        self, specs: list[dict[str, Any]], max_count: int, max_bytes: int
    ) -> list[SubmitOutcome]:
        out: list[SubmitOutcome] = []
        for body in batches(specs, max_count, max_bytes):
            outcomes = await self._run(_Calls.submit_batch(body))
            out.extend(outcomes)
        return out

    async def stats(self, minutes: int = 60) -> Stats:
        return await self._run(_Calls.stats(minutes))

    async def get(self, task_id: str) -> Task:
        return await self.tasks.get(task_id)

    async def wait(self, task_id: str, timeout: float) -> Task:
        return await self.tasks.wait(task_id, timeout)

    async def cancel(self, task_id: str) -> Task:
        return await self.tasks.cancel(task_id)

    async def retry(self, task_id: str) -> Task:
        return await self.tasks.retry(task_id)

    async def delete(self, task_id: str) -> None:
        await self.tasks.delete(task_id)

    async def cancel_where(self, **selector: Any) -> int:
        return await self.tasks.cancel_where(**selector)

    async def delete_where(self, **selector: Any) -> int:
        return await self.tasks.delete_where(**selector)

    async def retry_where(self, **selector: Any) -> int:
        return await self.tasks.retry_where(**selector)

    async def retry_dead(
        self, *, function: str | None = None, since: float | None = None,
        until: float | None = None,
    ) -> int:  # fmt: skip
        return await self.dead.retry(function=function, since=since, until=until)

    async def put_function(
        self, name: str, settings: Mapping[str, Any], *, code: bool = False
    ) -> FunctionConfig:
        return await self.functions.set(name, settings, code=code)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
