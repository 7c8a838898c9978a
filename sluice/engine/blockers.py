"""Blockers: why a waiting task has not started yet (DESIGN §8, OBSERVABILITY.md §0 "why
is this task still waiting?"), from what the engine already knows.

For one task, the first that applies, in this order: its time has not come (a delay or
a backoff); a pause rule holds it; no live node holds its partition; no connected worker
serves its function; the tenant's quota (its own rate or concurrency limit); the
function's rate; the function's concurrency; the adaptive (AIMD) limit of its pool or
HTTP target; else it is queued behind the ready tasks before it in fair order, counted
up to AHEAD_CAP. A few small reads per question (the partition leases, running counts
and rate states of the limits that apply, the capped count); never a scan of tasks.

`held` answers the same for groups, for the gauges of tasks held by each limit: the
timers leader calls it with the backlog snapshot's counts (engine/snapshot.py).

Limits as this node sees them: an AIMD limit is each node's own, and the workers
connected to other nodes are not known here, so `no_worker` is said only while no other
node holds partitions (a lone node, SQLite or PostgreSQL).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Protocol

import msgspec

from ..contract import AHEAD_CAP, FunctionConfig, TenantQuota, Waiting
from ..errors import NotFound
from ..model import PAUSED, READY, SCHEDULED, SHARED, TaskRecord
from ..policy import gcra
from ..policy.aimd import Aimd
from ..store import BacklogRow
from .adaptive import AdaptivePools
from .functions import Functions
from .partitions import PART, Partitions
from .pauses import Pauses, matches
from .quotas import Quotas
from .registry import Registry
from .runtime import Runtime

_tags = msgspec.json.Decoder(list[str])
HELD = "held:"  # a backlog row of ready tasks held by a limit: held:rate_limit, ...


class Limited(Protocol):
    @property
    def aimd(self) -> Aimd: ...


class TargetLimits(Protocol):
    """The HTTP targets' AIMD limits (engine/targets.py's `Targets`)."""

    def items(self) -> Sequence[tuple[tuple[str, str], Limited]]: ...


class Blockers:
    def __init__(
        self, rt: Runtime, registry: Registry, *, functions: Functions, quotas: Quotas,
        pauses: Pauses, partitions: Partitions, adaptive: AdaptivePools, targets: TargetLimits,
    ) -> None:  # fmt: skip
        self._rt = rt
        self._registry = registry
        self._functions = functions
        self._quotas = quotas
        self._pauses = pauses
        self._partitions = partitions
        self._adaptive = adaptive
        self._targets = targets

    async def why_task(self, tenant_id: str, task_id: str) -> Waiting | None:
        """Why the tenant's task waits (NotFound if it has no such task)."""
        task = await self._rt.store.get_task(tenant_id, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}", code="task_not_found", field="task_id")
        return await self.why(task)

    async def why(self, task: TaskRecord) -> Waiting | None:
        """Why this task waits; None if it is running or ended."""
        now = self._rt.clock.now()
        if task.state == SCHEDULED:
            return _scheduled(task.run_at, now)
        if task.state == PAUSED:
            return await self._paused(task)
        if task.state != READY:
            return None
        tenant_id, function = task.tenant_id, task.function
        found = (
            await self._orphan(task.partition)
            or self._no_worker(tenant_id, function)
            or await self._limited(tenant_id, function, now, None)
        )
        if found is not None:
            return found
        ahead = await self._rt.store.count_ahead(tenant_id, task.id, AHEAD_CAP)
        return _queued(ahead)

    async def held(self, rows: list[BacklogRow]) -> list[BacklogRow]:
        """For each (tenant, function) with ready tasks, a `held:<reason>` row of them all
        when a limit holds the function back now; `rows` also give the running counts."""
        running: dict[tuple[str, str], int] = {}
        for r in rows:
            if r.state == "running":
                running[(r.tenant_id, r.function)] = r.tasks
                running[(r.tenant_id, "")] = running.get((r.tenant_id, ""), 0) + r.tasks
        now = self._rt.clock.now()
        out = []
        for r in rows:
            if r.state != READY:
                continue
            found = await self._limited(r.tenant_id, r.function, now, running)
            if found is not None:
                out.append(BacklogRow(r.tenant_id, r.function, HELD + found.reason, r.tasks))
        return out

    # -- each reason -------------------------------------------------------------

    async def _paused(self, task: TaskRecord) -> Waiting:
        tags = _tags.decode(task.tags) if task.tags else []
        for pause_id, selector in await self._pauses.rules(task.tenant_id):
            if matches(selector, task.function, tags, task.priority):
                return Waiting("paused", f"pause {pause_id} holds it; it waits until that "
                               "pause is resumed", pause_id=pause_id)  # fmt: skip
        return Waiting("paused", "a pause held it; it is released when the pause is resumed")

    async def _orphan(self, partition: int) -> Waiting | None:
        leases = await self._rt.store.list_leases(PART)
        if any(name == f"{PART}{partition}" for name, _holder, _until in leases):
            return None
        return Waiting(
            "no_partition_owner",
            f"no live server node holds its partition {partition}; a node takes it over "
            "when the last holder's lease runs out",
            partition=partition,
        )

    def _no_worker(self, tenant_id: str, function: str) -> Waiting | None:
        if self._partitions.others:
            return None  # other nodes run: the workers connected to them are not known here
        for conn in self._registry:
            if (
                not conn.closed
                and conn.tenant_id in (tenant_id, SHARED)
                and (function in conn.functions)
            ):
                return None
        return Waiting("no_worker", f"no connected worker serves {function}; it starts when "
                       "one connects")  # fmt: skip

    async def _limited(
        self, tenant_id: str, function: str, now: float, running: dict[tuple[str, str], int] | None
    ) -> Waiting | None:
        """The first limit that holds the function's ready tasks back now. `running`:
        counts from the snapshot (tenant-wide under function ""), else read."""
        quota = self._quotas.cached(tenant_id)
        config = (await self._functions.of(tenant_id)).get(function)
        keys = [k for k, on in ((f"tenant:{tenant_id}", quota is not None and quota.rate),
                                (f"{tenant_id}:{function}", config is not None and config.rate))
                if on]  # fmt: skip
        states = await self._rt.store.rate_states(keys) if keys else {}
        if quota is not None and quota.limited:
            found = await self._over(quota, f"tenant:{tenant_id}", states, tenant_id, None,
                                     now, running)  # fmt: skip
            if found is not None:
                return Waiting("tenant_quota", f"the tenant's quota: {found.message}",
                               retry_at=found.retry_at, limit=found.limit,
                               running=found.running)  # fmt: skip
        if config is not None:
            found = await self._over(config, f"{tenant_id}:{function}", states, tenant_id,
                                     function, now, running)  # fmt: skip
            if found is not None:
                return found
        return self._aimd(tenant_id, function, now)

    async def _over(
        self, limits: TenantQuota | FunctionConfig, key: str, states: dict[str, float],
        tenant_id: str, function: str | None, now: float,
        running: dict[tuple[str, str], int] | None,
    ) -> Waiting | None:  # fmt: skip
        """A rate or a concurrency limit that is reached now, as a Waiting."""
        rate, cap = limits.rate, limits.max_concurrency
        if rate is not None and gcra.allowed(states.get(key, 0.0), now, rate, limits.burst) < 1:
            tat = states[key]
            retry_at = tat - (limits.burst - 1) * gcra.interval(rate)
            return Waiting("rate_limit", f"its rate of {rate:g}/s is used up; the next start "
                           f"is allowed in {max(0.0, retry_at - now):.2f} s",
                           retry_at=retry_at, limit=rate)  # fmt: skip
        if cap is None:
            return None
        if running is None:
            n = await self._rt.store.count_running(tenant_id, function)
        else:
            n = running.get((tenant_id, function or ""), 0)
        if n < cap:
            return None
        return Waiting("concurrency_limit", f"{n} of its at most {cap} tasks are running; it "
                       "starts when one ends", limit=cap, running=n)  # fmt: skip

    def _aimd(self, tenant_id: str, function: str, now: float) -> Waiting | None:
        limits = self._adaptive.limits
        targets = dict(self._targets.items())
        candidates: list[Aimd] = [
            a for a in (limits.get((tenant_id, function)), limits.get((SHARED, function)))
            if a is not None
        ]  # fmt: skip
        target = targets.get((tenant_id, function))
        if target is not None:
            candidates.append(target.aimd)
        for aimd in candidates:
            if aimd.room(now) <= 0:
                return Waiting(
                    "aimd_limit",
                    f"its downstream asked to slow down: {aimd.inflight} in flight, at its "
                    f"adaptive limit of {int(aimd.limit)}",
                    limit=float(int(aimd.limit)), running=aimd.inflight,
                )  # fmt: skip
        return None


def _scheduled(run_at: float, now: float) -> Waiting:
    when = datetime.datetime.fromtimestamp(run_at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if run_at <= now:
        return Waiting("scheduled", f"its time ({when} UTC) has come; it becomes ready at "
                       "the next promotion", run_at=run_at)  # fmt: skip
    return Waiting("scheduled", f"it is scheduled for {when} UTC, in {run_at - now:,.1f} s",
                   run_at=run_at)  # fmt: skip


def _queued(ahead: int) -> Waiting:
    capped = ahead >= AHEAD_CAP
    if ahead == 0:
        message = "it is next in line; it starts when a worker slot is free"
    else:
        count = f"{AHEAD_CAP:,}+" if capped else f"{ahead:,}"
        message = f"queued behind {count} ready tasks of its function in fair order"
    return Waiting("queued", message, ahead=ahead, ahead_capped=capped)
