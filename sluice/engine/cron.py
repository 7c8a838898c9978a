"""Cron schedules: their verbs, and the tick that fires them (DESIGN §4 "Triggers").

The tick runs on the timers leader only (timers.py). For each schedule whose next fire
time has come it asks the pure planner (policy/cron.py) what to fire and what to skip,
then commits the schedule's new firing state and the fired tasks together with a
compare-and-set on the state it read (store.fire_schedule). Two leaders at once (a
lease handed over during a pause) cannot both fire a time: the second finds the state
moved and commits nothing; each fired task is also keyed by its fire time.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import msgspec

from ..errors import InvalidRequest, NotFound, SluiceError
from ..model import NewTask, ScheduleRow, ScheduleSpec, new_task_id
from ..policy import cron
from .admission import TaskSpec, build_task

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("sluice.cron")

SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
MAX_CATCHUP_S = 7 * 86400.0
DUE_BATCH = 100
_spec_decoder = msgspec.json.Decoder(ScheduleSpec)
_encoder = msgspec.json.Encoder()


def fire_key(name: str, at: float) -> str:
    return f"sluice:cron:{name}:{at:.0f}"


class Schedules:
    def __init__(self, node: Node) -> None:
        self._node = node

    # -- verbs -------------------------------------------------------------------

    async def put(self, tenant_id: str, name: str, spec: ScheduleSpec) -> ScheduleRow:
        """Create or replace a schedule; a replaced one keeps its firing state."""
        node = self._node
        if not SCHEDULE_NAME.match(name):
            raise InvalidRequest(f"schedule names match {SCHEDULE_NAME.pattern}", field="name")
        if not cron.valid_expression(spec.cron):
            raise InvalidRequest(f"not a cron expression: {spec.cron!r}", field="cron")
        if not cron.valid_timezone(spec.timezone):
            raise InvalidRequest(f"unknown time zone {spec.timezone!r}", field="timezone")
        if spec.catchup not in cron.CATCHUP:
            raise InvalidRequest("catchup is all, latest or none", field="catchup")
        if not 0 <= spec.max_catchup_s <= MAX_CATCHUP_S:
            raise InvalidRequest(
                f"max_catchup_s is between 0 and {MAX_CATCHUP_S:.0f}", field="max_catchup_s"
            )
        now = node.clock.now()
        # The task it will fire must be a valid submit today: same checks, same errors.
        functions = await node.usable(tenant_id)
        build_task(self._task_spec(name, spec, now), functions.get(spec.function), node.settings,
                   now, "", new_task_id())  # fmt: skip
        existing = await node.store.list_schedules(tenant_id, name)
        last, floor = now, 0.0
        if existing:
            old, last = decode(existing[0]), existing[0].last_fire_at
            if (old.cron, old.timezone) != (spec.cron, spec.timezone):
                last = floor = max(last, now)  # a new expression starts now, not in its past
        paused = bool(existing) and existing[0].paused
        next_at = None if paused else _next(spec, last)
        config = _encoder.encode(spec)
        await node.store.put_schedule(tenant_id, name, config, next_at, now, last_floor=floor)
        return await self.get(tenant_id, name)

    async def list_all(self, tenant_id: str) -> list[ScheduleRow]:
        return await self._node.store.list_schedules(tenant_id)

    async def get(self, tenant_id: str, name: str) -> ScheduleRow:
        rows = await self._node.store.list_schedules(tenant_id, name)
        if not rows:
            raise NotFound(f"no schedule {name!r}", code="schedule_not_found", field="name")
        return rows[0]

    async def delete(self, tenant_id: str, name: str) -> None:
        if not await self._node.store.delete_schedule(tenant_id, name):
            raise NotFound(f"no schedule {name!r}", code="schedule_not_found", field="name")

    async def pause(self, tenant_id: str, name: str, paused: bool) -> ScheduleRow:
        """Pause, or resume from now: fire times missed while paused are not run."""
        row = await self.get(tenant_id, name)
        now = self._node.clock.now()
        next_at = None if paused else _next(decode(row), max(now, row.last_fire_at))
        await self._node.store.pause_schedule(tenant_id, name, paused, next_at, now)
        return await self.get(tenant_id, name)

    # -- the tick ----------------------------------------------------------------

    async def tick(self) -> int:
        """Fire what is due; returns how many tasks were created."""
        node = self._node
        now = node.clock.now()
        created = 0
        for row in await node.store.due_schedules(now, DUE_BATCH):
            spec = decode(row)
            plan = cron.plan(
                spec.cron, spec.timezone, row.last_fire_at, now,
                spec.catchup,  # type: ignore[arg-type]  # validated by put()
                spec.max_catchup_s,
            )  # fmt: skip
            tasks, skipped = await self._tasks(row, spec, plan.fire, now), plan.skipped
            skipped += len(plan.fire) - len(tasks)
            if await node.store.fire_schedule(row, plan.last, plan.next_at, skipped, tasks, now):
                created += len(tasks)
                if skipped:
                    log.warning("schedule %s skipped %d fire times", row.name, skipped)
                if any(t.state == "ready" for t in tasks):
                    node.dispatcher.notify(row.tenant_id)
        return created

    async def _tasks(
        self, row: ScheduleRow, spec: ScheduleSpec, fires: list[float], now: float
    ) -> list[NewTask]:
        functions = await self._node.usable(row.tenant_id)
        out = []
        for at in fires:
            try:
                out.append(
                    build_task(self._task_spec(row.name, spec, at), functions.get(spec.function),
                               self._node.settings, now, "", new_task_id())
                )  # fmt: skip
            except SluiceError as exc:  # the function's config changed under the schedule
                log.error("schedule %s cannot fire at %.0f: %s", row.name, at, exc)
        return await self._node.fairness.tag(row.tenant_id, out)

    @staticmethod
    def _task_spec(name: str, spec: ScheduleSpec, at: float) -> TaskSpec:
        return TaskSpec(
            function=spec.function, args=spec.args, kwargs=spec.kwargs, priority=spec.priority,
            tags=spec.tags, key=fire_key(name, at),
        )  # fmt: skip


def decode(row: ScheduleRow) -> ScheduleSpec:
    return _spec_decoder.decode(row.config)


def _next(spec: ScheduleSpec, after: float) -> float | None:
    upcoming = cron.fire_times(spec.cron, spec.timezone, after, float("inf"), 1)
    return upcoming[0] if upcoming else None
