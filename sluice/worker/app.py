"""`App` and `@app.task`: register handlers and submit work to them.

app = sluice.App("shop")

@app.task(retry=sluice.RetryPolicy(max_attempts=5), timeout=30, priority=7)
def send_welcome(user_id: int) -> None: ...

send_welcome.submit(42, delay=600)
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, ParamSpec, TypeVar

import msgspec

from ..client.http import AsyncClient, Client, task_spec
from ..contract import Destination, FunctionConfig, RetryPolicy, SubmitOutcome, Task
from ..errors import ResultTimeout, TaskFailed
from ..model import TERMINAL

P = ParamSpec("P")
R = TypeVar("R")

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
SUBMIT_CHUNK = 1000
PIPELINE = 2  # batch requests in flight at once (async SDK)
# Keyword arguments of submit() that are options, not handler arguments.
OPTIONS = ("delay", "run_at", "priority", "key", "ttl", "tags", "retry")


class Call(msgspec.Struct, frozen=True):
    """One call for `submit_many`, when a plain tuple of arguments is not enough."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    delay: float | None = None
    run_at: float | None = None
    priority: int | None = None
    key: str | None = None
    ttl: float | None = None
    tags: list[str] | None = None
    retry: RetryPolicy | None = None


class TaskHandle:
    """A submitted task: its id, and ways to ask how it is doing."""

    def __init__(self, app: App, outcome: SubmitOutcome) -> None:
        self._app = app
        self.id = outcome.id
        self.created = outcome.created
        self.state = outcome.state

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id} {self.state}>"

    def status(self) -> str:
        self.state = self._app.client.get(self.id).state
        return self.state

    def get(self) -> Task:
        return self._app.client.get(self.id)

    def cancel(self) -> str:
        """Cancel the task (a running one is stopped); returns its state."""
        self.state = self._app.client.cancel(self.id).state
        return self.state

    async def acancel(self) -> str:
        self.state = (await self._app.aclient.cancel(self.id)).state
        return self.state

    def result(self, timeout: float | None = 30.0) -> Any:
        """The handler's return value; raises TaskFailed or ResultTimeout."""
        return _result_of(self.id, self._wait_sync(timeout))

    def _wait_sync(self, timeout: float | None) -> Task:
        deadline = None if timeout is None else _now() + timeout
        while True:
            left = 30.0 if deadline is None else max(0.0, min(30.0, deadline - _now()))
            task = self._app.client.wait(self.id, left)
            if task.state in TERMINAL or (deadline is not None and _now() >= deadline):
                return task

    async def aresult(self, timeout: float | None = 30.0) -> Any:
        deadline = None if timeout is None else _now() + timeout
        while True:
            left = 30.0 if deadline is None else max(0.0, min(30.0, deadline - _now()))
            task = await self._app.aclient.wait(self.id, left)
            if task.state in TERMINAL or (deadline is not None and _now() >= deadline):
                return _result_of(self.id, task)


def _now() -> float:
    return time.monotonic()


def _result_of(task_id: str, task: Task) -> Any:
    if task.state == "succeeded":
        return task.result
    if task.state in TERMINAL:
        raise TaskFailed(task_id, task.state, task.error)
    raise ResultTimeout(task_id, task.state)


class TaskFunction(Generic[P, R]):
    """A handler registered with an App. Calling it runs it here; `submit` queues it."""

    def __init__(
        self,
        app: App,
        fn: Callable[P, R],
        config: FunctionConfig,
        non_retryable: tuple[type[BaseException], ...] = (),
        isolation: str | None = None,
        cpu_time_s: float | None = None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.config = config
        self.non_retryable = non_retryable
        self.isolation = isolation  # "thread", "process"; None: the worker's default
        self.cpu_time_s = cpu_time_s  # CPU seconds an isolated attempt may use
        self.name = config.name
        self.is_async = inspect.iscoroutinefunction(fn)
        params = list(inspect.signature(fn).parameters)
        self.takes_context = bool(params) and params[0] == "ctx"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def _spec(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {k: kwargs.pop(k) for k in OPTIONS if k in kwargs}
        return task_spec(self.name, args, kwargs, **options)

    def submit(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """Queue one call. Options: delay, run_at, priority, key, ttl, tags, retry."""
        return TaskHandle(self.app, self.app.client.submit(self._spec(args, kwargs)))

    async def asubmit(self, *args: Any, **kwargs: Any) -> TaskHandle:
        return TaskHandle(self.app, await self.app.aclient.submit(self._spec(args, kwargs)))

    def _specs(self, calls: Iterable[Any]) -> list[dict[str, Any]]:
        specs = []
        for call in calls:
            if isinstance(call, Call):
                options = {k: getattr(call, k) for k in OPTIONS}
                specs.append(task_spec(self.name, call.args, call.kwargs, **options))
            elif isinstance(call, dict):
                specs.append(task_spec(self.name, (), call))
            elif isinstance(call, tuple):
                specs.append(task_spec(self.name, call, {}))
            else:
                specs.append(task_spec(self.name, (call,), {}))
        return specs

    def submit_many(self, calls: Iterable[Any]) -> list[TaskHandle]:
        """Queue many calls, 1,000 per request. Each call is a tuple of positional
        arguments, a dict of keyword arguments, a `Call`, or a single argument."""
        specs = self._specs(calls)
        out: list[TaskHandle] = []
        for i in range(0, len(specs), SUBMIT_CHUNK):
            outcomes = self.app.client.submit_many(specs[i : i + SUBMIT_CHUNK])
            out.extend(TaskHandle(self.app, o) for o in outcomes)
        return out

    async def asubmit_many(self, calls: Iterable[Any]) -> list[TaskHandle]:
        specs = self._specs(calls)
        chunks = [specs[i : i + SUBMIT_CHUNK] for i in range(0, len(specs), SUBMIT_CHUNK)]
        gate = asyncio.Semaphore(PIPELINE)

        async def send(chunk: list[dict[str, Any]]) -> list[SubmitOutcome]:
            async with gate:
                return await self.app.aclient.submit_many(chunk)

        # Two requests in flight: the server validates one batch while it commits the other.
        answers = await asyncio.gather(*(send(c) for c in chunks))
        return [TaskHandle(self.app, o) for outcomes in answers for o in outcomes]


class App:
    """A tenant's code: a registry of task handlers and a way to reach the server."""

    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        isolation: str | None = None,
    ) -> None:
        if not NAME.match(name):
            raise ValueError(f"app name {name!r} must match {NAME.pattern}")
        _check_isolation(isolation)
        self.name = name
        self.isolation = isolation  # its functions' default (docs/isolation.md)
        self.tasks: dict[str, TaskFunction[Any, Any]] = {}
        self._url = url
        self._api_key = api_key
        self._client: Client | None = None
        self._aclient: AsyncClient | None = None

    def task(
        self,
        fn: Callable[P, R] | None = None,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        priority: int | None = None,
        ttl: float | None = None,
        tags: list[str] | None = None,
        non_retryable: tuple[type[BaseException], ...] = (),
        rate: float | None = None,
        burst: int = 1,
        max_concurrency: int | None = None,
        on_success: str | None = None,
        on_failure: str | None = None,
        isolation: str | None = None,
        memory_mb: int | None = None,
        cpu: float | None = None,
        cpu_time_s: float | None = None,
    ) -> Any:
        """Register a handler (plain or `async def`); usable bare or with options.

        Exceptions of the `non_retryable` types end the task at once (dead), like
        `sluice.Reject`; any other exception is retried by the `retry` policy.
        `rate` (starts per second, after a `burst`) and `max_concurrency` limit the
        function across the whole cluster, retries included. `on_success` names a
        function started with the result; `on_failure` one started with the error when
        the task dies (docs/notifications.md: destinations).

        `isolation="process"` runs each attempt in a child process (docs/isolation.md),
        held to `memory_mb` (MiB above what the child uses at the start) and
        `cpu_time_s`, killed at its timeout or cancel. `memory_mb` and `cpu` are also
        what one task takes of a worker's offered memory and CPUs: a worker runs
        together only what fits.
        """
        _check_isolation(isolation)

        def register(f: Callable[P, R]) -> TaskFunction[P, R]:
            task_name = name or f.__name__
            if not NAME.match(task_name):
                raise ValueError(f"task name {task_name!r} must match {NAME.pattern}")
            if task_name in self.tasks:
                raise ValueError(f"task {task_name!r} is registered twice")
            config = FunctionConfig(
                name=task_name,
                retry=retry or RetryPolicy(),
                timeout_s=timeout,
                priority=5 if priority is None else priority,
                ttl_s=ttl,
                tags=list(tags or []),
                rate=rate,
                burst=burst,
                max_concurrency=max_concurrency,
                memory_mb=memory_mb,
                cpu=cpu,
                destinations=_destinations(on_success, on_failure),
            )
            tf: TaskFunction[P, R] = TaskFunction(
                self, f, config, tuple(non_retryable), isolation, cpu_time_s
            )
            self.tasks[task_name] = tf
            return tf

        return register(fn) if fn is not None else register

    def configure(self, *, url: str | None = None, api_key: str | None = None) -> None:
        """Point the app's clients at a server (otherwise found like `discover()` does)."""
        self._url, self._api_key = url, api_key
        if self._client is not None:
            self._client.close()
        self._client = None
        self._aclient = None

    def register(self) -> None:
        """Tell the server about every task's config, so producers can submit before any
        worker has connected (a connecting worker registers them too)."""
        for tf in self.tasks.values():
            settings = msgspec.structs.asdict(tf.config)
            del settings["name"]
            self.client.put_function(tf.name, msgspec.to_builtins(settings), code=True)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self._url, self._api_key)
        return self._client

    @property
    def aclient(self) -> AsyncClient:
        """An AsyncClient bound to the running event loop."""
        if self._aclient is None:
            self._aclient = AsyncClient(self._url, self._api_key)
        return self._aclient


def _destinations(on_success: str | None, on_failure: str | None) -> list[Destination]:
    """The decorator's `on_success` / `on_failure` as the config's destinations."""
    found = []
    if on_success is not None:
        found.append(Destination(function=on_success, events=["succeeded"]))
    if on_failure is not None:
        found.append(Destination(function=on_failure, events=["dead"]))
    return found


def _check_isolation(isolation: str | None) -> None:
    if isolation not in (None, "thread", "process"):
        raise ValueError(f"isolation is 'thread' or 'process', not {isolation!r}")
