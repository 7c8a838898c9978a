"""The scaling signal of a worker pool (DESIGN §7, OBSERVABILITY.md §5.2): what
`GET /v1/scaling/{pool}` answers and `sluice worker --autoscale` follows.

load = ready tasks that could start now + running tasks + delayed tasks due within
DUE_SOON_S. Tasks that more workers would not start are left out: paused ones, and the
ready tasks of a (tenant, function) beyond what its limits let start now (the room of
its tenant's quota, its function's rate and concurrency, its pool's AIMD limit).

The counts are one small query per answer through the states' partial indexes, each
capped at LOAD_CAP (never a scan of the backlog: the snapshot's grouped count runs only
every 10 s), so every node answers the same from the shared store. An answer is kept
CACHE_S, so pollers and KEDA together cost one query per pool per CACHE_S per node.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from ..contract import DUE_SOON_S, LOAD_CAP, Held, Scaling
from ..model import SHARED
from ..policy import gcra
from ..store import BacklogRow
from .adaptive import AdaptivePools
from .functions import Functions
from .quotas import Quotas
from .runtime import Runtime

CACHE_S = 0.2  # well under the 1 s an autoscaler has to react in


@dataclass(frozen=True)
class _Group:
    """One (tenant, function)'s counts."""

    ready: int = 0
    oldest: float | None = None
    running: int = 0


class ScalingSignal:
    def __init__(
        self, rt: Runtime, functions: Functions, quotas: Quotas, adaptive: AdaptivePools
    ) -> None:
        self._rt = rt
        self._functions = functions
        self._quotas = quotas
        self._adaptive = adaptive
        self._cache: dict[tuple[str, str, tuple[str, ...]], tuple[float, asyncio.Task[Scaling]]]
        self._cache = {}

    async def of(self, owner: str, pool: str, functions: list[str]) -> Scaling:
        """The signal of `owner`'s workers (a tenant, or SHARED for shared pools) for
        `functions` (none: every function they serve)."""
        if not functions:
            configs = await self._functions.of(owner)
            functions = sorted(name for name, c in configs.items() if c.target is None)
        key = (owner, pool, tuple(sorted(set(functions))))
        now = self._rt.clock.monotonic()
        cached = self._cache.get(key)
        if cached is None or now - cached[0] > CACHE_S or cached[1].cancelled():
            if len(self._cache) > 1000:  # a bound: many pollers of many pools
                self._cache.clear()
            cached = (now, asyncio.ensure_future(self._count(owner, pool, list(key[2]))))
            self._cache[key] = cached
        return await asyncio.shield(cached[1])

    async def _count(self, owner: str, pool: str, functions: list[str]) -> Scaling:
        rt = self._rt
        now = rt.clock.now()
        rows = []
        if functions:
            rows = await rt.store.count_load(owner, functions, now + DUE_SOON_S, LOAD_CAP)
        groups: dict[tuple[str, str], _Group] = defaultdict(_Group)
        paused = due = 0
        for r in rows:
            g = groups[(r.tenant_id, r.function)]
            if r.state == "ready":
                groups[(r.tenant_id, r.function)] = _Group(r.tasks, r.oldest, g.running)
            elif r.state == "running":
                groups[(r.tenant_id, r.function)] = _Group(g.ready, g.oldest, r.tasks)
            elif r.state == "paused":
                paused += r.tasks
            else:
                due += r.tasks
        held: dict[str, int] = defaultdict(int)
        dispatchable = 0
        for (tenant_id, function), g in groups.items():
            if not g.ready:
                continue
            room, reason = await self._room(tenant_id, function, g.running, now)
            start = g.ready if room is None else min(g.ready, room)
            dispatchable += start
            if reason is not None and start < g.ready:
                held[reason] += g.ready - start
        running = sum(g.running for g in groups.values())
        oldest = min((g.oldest for g in groups.values() if g.oldest is not None), default=None)
        return Scaling(
            pool=pool, functions=functions, load=dispatchable + running + due,
            ready_dispatchable=dispatchable, running=running, due_soon=due,
            held=Held(paused=paused, **held),
            oldest_ready_age_seconds=0.0 if oldest is None else round(max(0.0, now - oldest), 3),
            capped=_capped(rows),
        )  # fmt: skip

    async def _room(
        self, tenant_id: str, function: str, running: int, now: float
    ) -> tuple[int | None, str | None]:
        """How many more of a (tenant, function)'s tasks its limits let start now (None:
        no limit), and the limit that allows the fewest."""
        rooms: list[tuple[int, str]] = []
        quota = self._quotas.cached(tenant_id)
        config = (await self._functions.of(tenant_id)).get(function)
        if config is None and tenant_id != SHARED:
            config = (await self._functions.of(SHARED)).get(function)
        rate_keys = {}
        if quota is not None and quota.rate is not None:
            rate_keys[f"tenant:{tenant_id}"] = (quota.rate, quota.burst, "tenant_quota")
        if config is not None and config.rate is not None:
            rate_keys[f"{tenant_id}:{function}"] = (config.rate, config.burst, "rate_limit")
        if rate_keys:
            states = await self._rt.store.rate_states(list(rate_keys))
            for key, (rate, burst, reason) in rate_keys.items():
                rooms.append((gcra.allowed(states.get(key, 0.0), now, rate, burst), reason))
        if quota is not None and quota.max_concurrency is not None:
            busy = await self._rt.store.count_running(tenant_id, None)
            rooms.append((max(0, quota.max_concurrency - busy), "tenant_quota"))
        if config is not None and config.max_concurrency is not None:
            rooms.append((max(0, config.max_concurrency - running), "concurrency_limit"))
        for owner in (tenant_id, SHARED):
            aimd = self._adaptive.limits.get((owner, function))
            if aimd is not None:
                rooms.append((max(0, aimd.room(now)), "aimd_limit"))
        if not rooms:
            return None, None
        room, reason = min(rooms)
        return room, reason


def _capped(rows: list[BacklogRow]) -> bool:
    """Whether a capped count (ready, paused, due: each capped as a whole) hit its cap."""
    totals: dict[str, int] = defaultdict(int)
    for r in rows:
        totals[r.state] += r.tasks
    return any(totals[s] >= LOAD_CAP for s in ("ready", "paused", "due"))
