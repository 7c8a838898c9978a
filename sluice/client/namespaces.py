"""The nouns of the client: `client.tasks`, `.dead`, `.functions`, `.schedules`,
`.pauses`, `.tenants`, `.keys`.

Each method names a `_Call` (calls.py) and hands it to the client that owns the
namespace, so the sync and async variants differ only by `await`.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar, Unpack

from ..contract import (
    ApiKey,
    DeadTask,
    Delivery,
    Function,
    FunctionConfig,
    LogEntry,
    NewKey,
    NewTenant,
    Pause,
    Schedule,
    SigningSecret,
    Task,
    TaskSummary,
    Tenant,
    Waiting,
    WebhookReceiver,
)
from ..model import TERMINAL
from .calls import FOLLOW_WAIT_S, PAGE_SIZE, _Call, _Calls, _Pager, schedule_spec
from .models import ScheduleSpec

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741


class _Runs(Protocol):
    def _run(self, call: _Call[T]) -> T: ...
    def _pages(self, pager: _Pager[I]) -> Iterator[I]: ...


class _AsyncRuns(Protocol):
    def _run(self, call: _Call[T]) -> Awaitable[T]: ...
    def _pages(self, pager: _Pager[I]) -> AsyncIterator[I]: ...


class Tasks:
    """`client.tasks`: one task by id, or every task a selector matches.

    A selector takes `function`, `state`, `tags` (a value or a list), `priority_min`,
    `priority_max`, `created_after`, `created_before` (epoch seconds) and `key`.
    """

    def __init__(self, client: _Runs) -> None:
        self._client = client

    def list(self, *, page_size: int = PAGE_SIZE, **selector: Any) -> Iterator[TaskSummary]:
        """Every task the selector matches, newest first, fetched a page at a time."""
        return self._client._pages(_Calls.list_tasks(selector, page_size))

    def __call__(self, *, page_size: int = PAGE_SIZE, **selector: Any) -> Iterator[TaskSummary]:
        """The same as `list` (the client's first releases had `client.tasks(...)`)."""
        return self.list(page_size=page_size, **selector)

    def get(self, task_id: str) -> Task:
        """The task with its attempts and timeline."""
        return self._client._run(_Calls.get(task_id))

    def wait(self, task_id: str, timeout: float) -> Task:
        """The task once it has ended, or as it is after `timeout` seconds (long-poll)."""
        return self._client._run(_Calls.wait(task_id, timeout))

    def logs(self, task_id: str, **filters: Any) -> Iterator[LogEntry]:
        """The task's captured log lines so far, every attempt's in order, fetched a page
        at a time. Filters: `attempt`, `level` (debug, info, warning, error, critical: that
        level and above), `q` (a text, case-insensitive), `limit` (lines per page)."""
        cursor = None
        while True:
            page = self._client._run(_Calls.logs(task_id, filters, cursor, 0))
            yield from page.lines
            if not page.more:
                return
            cursor = page.next

    def follow_logs(self, task_id: str, **filters: Any) -> Iterator[LogEntry]:
        """The task's lines as they are written, until it ends (long-polls)."""
        cursor = None
        while True:
            ended = self._client._run(_Calls.get(task_id)).state in TERMINAL
            page = self._client._run(
                _Calls.logs(task_id, filters, cursor, 0 if ended else FOLLOW_WAIT_S)
            )
            yield from page.lines
            cursor = page.next
            if ended and not page.more:
                return

    def why(self, task_id: str) -> Waiting:
        """Why a waiting task has not started yet (a 409 RemoteError if it is not waiting)."""
        return self._client._run(_Calls.why(task_id))

    def cancel(self, task_id: str) -> Task:
        """Cancel a task that has not ended; a running one is stopped."""
        return self._client._run(_Calls.cancel(task_id))

    def retry(self, task_id: str) -> Task:
        """Run a dead task again, with a new attempt series."""
        return self._client._run(_Calls.retry(task_id))

    def delete(self, task_id: str) -> None:
        """Delete a task that is not running (cancel it first)."""
        self._client._run(_Calls.delete(task_id))

    def notifications(self, task_id: str) -> builtins.list[Delivery]:
        """The task's webhooks and destinations, in order, with their last answers."""
        return self._client._run(_Calls.notifications(task_id))

    def cancel_where(self, **selector: Any) -> int:
        """Cancel every task the selector matches that has not ended; returns how many."""
        return self._client._run(_Calls.bulk("cancel", selector))

    def delete_where(self, **selector: Any) -> int:
        """Delete every task the selector matches, except running ones; returns how many."""
        return self._client._run(_Calls.bulk("delete", selector))

    def retry_where(self, **selector: Any) -> int:
        """Retry every dead task the selector matches; returns how many."""
        return self._client._run(_Calls.bulk("retry", selector))


class AsyncTasks:
    """`AsyncClient.tasks`: the methods of `Tasks`, awaited."""

    def __init__(self, client: _AsyncRuns) -> None:
        self._client = client

    def list(self, *, page_size: int = PAGE_SIZE, **selector: Any) -> AsyncIterator[TaskSummary]:
        """Every task the selector matches, newest first, fetched a page at a time."""
        return self._client._pages(_Calls.list_tasks(selector, page_size))

    def __call__(
        self, *, page_size: int = PAGE_SIZE, **selector: Any
    ) -> AsyncIterator[TaskSummary]:
        return self.list(page_size=page_size, **selector)

    async def get(self, task_id: str) -> Task:
        return await self._client._run(_Calls.get(task_id))

    async def wait(self, task_id: str, timeout: float) -> Task:
        return await self._client._run(_Calls.wait(task_id, timeout))

    async def logs(self, task_id: str, **filters: Any) -> AsyncIterator[LogEntry]:
        cursor = None
        while True:
            page = await self._client._run(_Calls.logs(task_id, filters, cursor, 0))
            for line in page.lines:
                yield line
            if not page.more:
                return
            cursor = page.next

    async def follow_logs(self, task_id: str, **filters: Any) -> AsyncIterator[LogEntry]:
        cursor = None
        while True:
            ended = (await self._client._run(_Calls.get(task_id))).state in TERMINAL
            page = await self._client._run(
                _Calls.logs(task_id, filters, cursor, 0 if ended else FOLLOW_WAIT_S)
            )
            for line in page.lines:
                yield line
            cursor = page.next
            if ended and not page.more:
                return

    async def why(self, task_id: str) -> Waiting:
        return await self._client._run(_Calls.why(task_id))

    async def cancel(self, task_id: str) -> Task:
        return await self._client._run(_Calls.cancel(task_id))

    async def retry(self, task_id: str) -> Task:
        return await self._client._run(_Calls.retry(task_id))

    async def delete(self, task_id: str) -> None:
        await self._client._run(_Calls.delete(task_id))

    async def notifications(self, task_id: str) -> builtins.list[Delivery]:
        return await self._client._run(_Calls.notifications(task_id))

    async def cancel_where(self, **selector: Any) -> int:
        return await self._client._run(_Calls.bulk("cancel", selector))

    async def delete_where(self, **selector: Any) -> int:
        return await self._client._run(_Calls.bulk("delete", selector))

    async def retry_where(self, **selector: Any) -> int:
        return await self._client._run(_Calls.bulk("retry", selector))


class Dead:
    """`client.dead`: dead letters, oldest first; retried one by one (`client.tasks.retry`)
    or by function and time (`retry`)."""

    def __init__(self, client: _Runs) -> None:
        self._client = client

    def list(
        self, *, function: str | None = None, since: float | None = None,
        until: float | None = None, page_size: int = PAGE_SIZE,
    ) -> Iterator[DeadTask]:  # fmt: skip
        """Every dead task (of a function, ended in [since, until)), a page at a time."""
        return self._client._pages(_Calls.list_dead(function, since, until, page_size))

    def __call__(self, function: str | None = None, limit: int = PAGE_SIZE) -> Iterator[DeadTask]:
        """The same as `list`, with `limit` as the page size (the first releases' call)."""
        return self.list(function=function, page_size=limit)

    def retry(
        self, *, function: str | None = None, since: float | None = None,
        until: float | None = None,
    ) -> int:  # fmt: skip
        """Retry every dead task matching; returns how many."""
        return self._client._run(_Calls.retry_dead(function, since, until))


class AsyncDead:
    def __init__(self, client: _AsyncRuns) -> None:
        self._client = client

    def list(
        self, *, function: str | None = None, since: float | None = None,
        until: float | None = None, page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[DeadTask]:  # fmt: skip
        return self._client._pages(_Calls.list_dead(function, since, until, page_size))

    def __call__(
        self, function: str | None = None, limit: int = PAGE_SIZE
    ) -> AsyncIterator[DeadTask]:
        return self.list(function=function, page_size=limit)

    async def retry(
        self, *, function: str | None = None, since: float | None = None,
        until: float | None = None,
    ) -> int:  # fmt: skip
        return await self._client._run(_Calls.retry_dead(function, since, until))


class Functions:
    """`client.functions`: the tenant's functions and their config."""

    def __init__(self, client: _Runs) -> None:
        self._client = client

    def list(self) -> list[FunctionConfig]:
        return list(self._client._pages(_Calls.list_functions()))

    def get(self, name: str) -> Function:
        """One function's config; `RemoteError` 404 `unknown_function` if there is none."""
        return self._client._run(_Calls.get_function(name))

    def set(self, name: str, settings: Mapping[str, Any], *, code: bool = False) -> FunctionConfig:
        """Set the operator's settings of a function: `retry` (a mapping of RetryPolicy
        fields), `timeout_s`, `priority`, `ttl_s`, `tags`, `rate`, `burst`,
        `max_concurrency`, `target`. The fields given win over the code's and survive
        workers reconnecting; those left out follow the code (they replace the
        operator's earlier settings). With `code=True` the settings are the code's."""
        return self._client._run(_Calls.put_function(name, settings, code))

    def reset(self, name: str, field: str) -> Function:
        """Return one setting to the code's value; the function as it is now."""
        return self._client._run(_Calls.reset_function(name, field))


class AsyncFunctions:
    def __init__(self, client: _AsyncRuns) -> None:
        self._client = client

    async def list(self) -> list[FunctionConfig]:
        return [f async for f in self._client._pages(_Calls.list_functions())]

    async def get(self, name: str) -> Function:
        return await self._client._run(_Calls.get_function(name))

    async def set(
        self, name: str, settings: Mapping[str, Any], *, code: bool = False
    ) -> FunctionConfig:
        return await self._client._run(_Calls.put_function(name, settings, code))

    async def reset(self, name: str, field: str) -> Function:
        return await self._client._run(_Calls.reset_function(name, field))


class Schedules:
    """`client.schedules`: cron schedules that submit a task of a function at each fire
    time, in their own time zone."""

    def __init__(self, client: _Runs) -> None:
        self._client = client

    def list(self) -> list[Schedule]:
        """Every schedule of the tenant, by name."""
        return self._client._run(_Calls.list_schedules())

    def get(self, name: str) -> Schedule:
        """One schedule; `RemoteError` 404 `schedule_not_found` if there is none."""
        return self._client._run(_Calls.get_schedule(name))

    def set(
        self, name: str, spec: Mapping[str, Any] | None = None, /, **fields: Unpack[ScheduleSpec]
    ) -> Schedule:
        """Create or replace a schedule, from a mapping or keywords (laid over the
        mapping): `set("nightly", function="report", cron="0 3 * * *",
        timezone="Europe/Berlin")`. See `ScheduleSpec` for the fields; those left out take
        their defaults. A replaced schedule keeps its firing state. `RemoteError` 400
        `invalid_request` names the bad field; 404 `unknown_function`."""
        return self._client._run(_Calls.put_schedule(name, schedule_spec(spec, **fields)))

    def pause(self, name: str) -> Schedule:
        """Stop firing. Fire times that pass while paused are not run after `resume`."""
        return self._client._run(_Calls.pause_schedule(name))

    def resume(self, name: str) -> Schedule:
        """Fire again, from the first fire time after now."""
        return self._client._run(_Calls.resume_schedule(name))

    def delete(self, name: str) -> None:
        """Delete a schedule; the tasks it already submitted stay."""
        self._client._run(_Calls.delete_schedule(name))


class AsyncSchedules:
    def __init__(self, client: _AsyncRuns) -> None:
        self._client = client

    async def list(self) -> list[Schedule]:
        return await self._client._run(_Calls.list_schedules())

    async def get(self, name: str) -> Schedule:
        return await self._client._run(_Calls.get_schedule(name))

    async def set(
        self, name: str, spec: Mapping[str, Any] | None = None, /, **fields: Unpack[ScheduleSpec]
    ) -> Schedule:
        return await self._client._run(_Calls.put_schedule(name, schedule_spec(spec, **fields)))

    async def pause(self, name: str) -> Schedule:
        return await self._client._run(_Calls.pause_schedule(name))

    async def resume(self, name: str) -> Schedule:
        return await self._client._run(_Calls.resume_schedule(name))

    async def delete(self, name: str) -> None:
        await self._client._run(_Calls.delete_schedule(name))


Values = str | Sequence[str]


def _pause_selector(
    function: Values | None, tags: Values | None, priority_min: int | None,
    priority_max: int | None,
) -> dict[str, Any]:  # fmt: skip
    return {"function": function, "tags": tags, "priority_min": priority_min,
            "priority_max": priority_max}  # fmt: skip


class Pauses:
    """`client.pauses`: pause and resume by selector.

    A pause holds every waiting task its selector matches (state `paused`): those
    waiting when it is made, new submissions and retries. Running tasks finish. Deleting
    it (resuming) releases the tasks it held that no other pause holds.
    """

    def __init__(self, client: _Runs) -> None:
        self._client = client

    def create(
        self, *, function: Values | None = None, tags: Values | None = None,
        priority_min: int | None = None, priority_max: int | None = None,
    ) -> Pause:  # fmt: skip
        """Pause the tasks of `function` (a name or a list: any of them), carrying all
        `tags`, with a priority in [`priority_min`, `priority_max`]; give at least one.
        `Pause.held` says how many waiting tasks it held at once. `RemoteError` 400
        `invalid_request` (field `selector` or `selector.<name>`) for a bad selector."""
        selector = _pause_selector(function, tags, priority_min, priority_max)
        return self._client._run(_Calls.create_pause(selector))

    def list(self) -> list[Pause]:
        """The tenant's pauses (`held` is None here)."""
        return self._client._run(_Calls.list_pauses())

    def delete(self, pause_id: str) -> int:
        """Lift a pause; returns how many tasks it released (those no other pause
        holds): ready again in their fair order, or scheduled if not due yet.
        `RemoteError` 404 `pause_not_found` if there is no such pause."""
        return self._client._run(_Calls.delete_pause(pause_id))

    def resume(self, pause_id: str) -> int:
        """The same as `delete`."""
        return self.delete(pause_id)


class AsyncPauses:
    def __init__(self, client: _AsyncRuns) -> None:
        self._client = client

    async def create(
        self, *, function: Values | None = None, tags: Values | None = None,
        priority_min: int | None = None, priority_max: int | None = None,
    ) -> Pause:  # fmt: skip
        selector = _pause_selector(function, tags, priority_min, priority_max)
        return await self._client._run(_Calls.create_pause(selector))

    async def list(self) -> list[Pause]:
        return await self._client._run(_Calls.list_pauses())

    async def delete(self, pause_id: str) -> int:
        return await self._client._run(_Calls.delete_pause(pause_id))

    async def resume(self, pause_id: str) -> int:
        return await self.delete(pause_id)


class Tenants:
    """`client.tenants` (admin key): every tenant; a new one with its first API key."""

    def __init__(self, client: _Runs) -> None:
        self._client = client

    def list(self) -> list[Tenant]:
        return self._client._run(_Calls.list_tenants())

    def create(self, name: str) -> NewTenant:
        return self._client._run(_Calls.create_tenant(name))


class AsyncTenants:
    def __init__(self, client: _AsyncRuns) -> None:
        self._client = client

    async def list(self) -> list[Tenant]:
        return await self._client._run(_Calls.list_tenants())

    async def create(self, name: str) -> NewTenant:
        return await self._client._run(_Calls.create_tenant(name))


class Keys:
    """`client.keys` (admin key): a tenant's API keys; a key is shown only when created."""

    def __init__(self, client: _Runs) -> None:
        self._client = client

    def list(self, tenant_id: str) -> list[ApiKey]:
        return self._client._run(_Calls.list_keys(tenant_id))

    def create(self, tenant_id: str) -> NewKey:
        return self._client._run(_Calls.create_key(tenant_id))

    def revoke(self, tenant_id: str, key_id: str) -> None:
        """Revoke a key: it stops working at once."""
        self._client._run(_Calls.revoke_key(tenant_id, key_id))


class AsyncKeys:
    def __init__(self, client: _AsyncRuns) -> None:
        self._client = client

    async def list(self, tenant_id: str) -> list[ApiKey]:
        return await self._client._run(_Calls.list_keys(tenant_id))

    async def create(self, tenant_id: str) -> NewKey:
        return await self._client._run(_Calls.create_key(tenant_id))

    async def revoke(self, tenant_id: str, key_id: str) -> None:
        await self._client._run(_Calls.revoke_key(tenant_id, key_id))


class Webhooks:
    """`client.webhooks`: the tenant's webhook receivers; re-enabling a disabled one."""

    def __init__(self, client: _Runs) -> None:
        self._client = client

    def list(self) -> list[WebhookReceiver]:
        return self._client._run(_Calls.list_webhooks())

    def enable(self, webhook_id: str) -> WebhookReceiver:
        """Enable a receiver disabled for failing: what waited for it is delivered."""
        return self._client._run(_Calls.enable_webhook(webhook_id))

    def secret(self) -> SigningSecret:
        """Whether the tenant has a signing secret for per-task webhooks (not its value)."""
        return self._client._run(_Calls.webhook_secret())

    def rotate_secret(self) -> SigningSecret:
        """A new signing secret for per-task webhooks (`.secret`: shown this once); the
        one before it keeps signing until the next rotation."""
        return self._client._run(_Calls.rotate_webhook_secret())


class AsyncWebhooks:
    def __init__(self, client: _AsyncRuns) -> None:
        self._client = client

    async def list(self) -> list[WebhookReceiver]:
        return await self._client._run(_Calls.list_webhooks())

    async def enable(self, webhook_id: str) -> WebhookReceiver:
        return await self._client._run(_Calls.enable_webhook(webhook_id))

    async def secret(self) -> SigningSecret:
        return await self._client._run(_Calls.webhook_secret())

    async def rotate_secret(self) -> SigningSecret:
        return await self._client._run(_Calls.rotate_webhook_secret())
