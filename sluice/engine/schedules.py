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

import msgspec

from ..contract import ScheduleSpec, TaskSpec
from ..errors import InvalidRequest, NotFound, SluiceError, Unprocessable
from ..model import NAME, NewTask, ScheduleRow, new_task_id
from ..policy import cron
from .admission import build_task
from .fairness import Fairness
from .functions import Functions
from .meters import Meters
from .queues import Queues
from .runtime import Runtime

log = logging.getLogger("sluice.cron")

DUE_BATCH = 100
_spec_decoder = msgspec.json.Decoder(ScheduleSpec)
_encoder = msgspec.json.Encoder()


def fire_key(name: str, at: float) -> str:
    return f"sluice:cron:{name}:{at:.0f}"


class Schedules:
    def __init__(
        self, rt: Runtime, functions: Functions, fairness: Fairness, queues: Queues,
        meters: Meters | None = None,
    ) -> None:  # fmt: skip
        self._rt = rt
        self._meters = meters or Meters(rt)
        self._functions = functions
        self._fairness = fairness
        self._queues = queues

    # -- verbs -------------------------------------------------------------------

    async def put(self, tenant_id: str, name: str, spec: ScheduleSpec) -> ScheduleRow:
        """Create or replace a schedule; a replaced one keeps its firing state."""
        rt = self._rt
        if not NAME.match(name):
            raise InvalidRequest(f"schedule names match {NAME.pattern}", field="name")
        # The type checked the shape (five or six fields, a zone-like name); whether
        # they mean something is for croniter and the zone database to say.
        if not cron.valid_expression(spec.cron):
            raise Unprocessable(
                f"not a cron expression croniter reads: {spec.cron!r}", code="invalid_cron",
                field="cron",
            )  # fmt: skip
        if not cron.valid_timezone(spec.timezone):
            raise Unprocessable(
                f"unknown time zone {spec.timezone!r}", code="unknown_timezone", field="timezone"
            )
        now = rt.clock.now()
        if not cron.ever_fires(spec.cron, spec.timezone, now):
            raise Unprocessable(
                f"{spec.cron!r} never fires (no fire time in the next ten years)",
                code="never_fires", field="cron",
            )  # fmt: skip
        # The task it will fire must be a valid submit today: same checks, same errors.
        functions = await self._functions.usable(tenant_id)
        build_task(self._task_spec(name, spec, now), functions.get(spec.function), rt.settings,
                   now, "", new_task_id(now))  # fmt: skip
        existing = await rt.store.list_schedules(tenant_id, name)
        last, floor = now, 0.0
        if existing:
            old, last = msgspec.json.decode(existing[0].config), existing[0].last_fire_at
            if (old.get("cron"), old.get("timezone", "UTC")) != (spec.cron, spec.timezone):
                last = floor = max(last, now)  # a new expression starts now, not in its past
        paused = bool(existing) and existing[0].paused
        next_at = None if paused else _next(spec, last)
        config = _encoder.encode(spec)
        await rt.store.put_schedule(tenant_id, name, config, next_at, now, last_floor=floor)
        return await self.get(tenant_id, name)

    async def list_all(self, tenant_id: str) -> list[ScheduleRow]:
        return await self._rt.store.list_schedules(tenant_id)

    async def get(self, tenant_id: str, name: str) -> ScheduleRow:
        rows = await self._rt.store.list_schedules(tenant_id, name)
        if not rows:
            raise NotFound(f"no schedule {name!r}", code="schedule_not_found", field="name")
        return rows[0]

    async def delete(self, tenant_id: str, name: str) -> None:
        if not await self._rt.store.delete_schedule(tenant_id, name):
            raise NotFound(f"no schedule {name!r}", code="schedule_not_found", field="name")

    async def pause(self, tenant_id: str, name: str, paused: bool) -> ScheduleRow:
        """Pause, or resume from now: fire times missed while paused are not run."""
        row = await self.get(tenant_id, name)
        now = self._rt.clock.now()
        next_at = None
        if not paused:
            try:
                next_at = _next(decode(row), max(now, row.last_fire_at))
            except msgspec.ValidationError as exc:
                raise Unprocessable(
                    f"schedule {name!r} was saved before a rule its config breaks ({exc}); "
                    "put a new config to resume it",
                    code="invalid_schedule",
                    field="name",
                ) from exc
        await self._rt.store.pause_schedule(tenant_id, name, paused, next_at, now)
        return await self.get(tenant_id, name)

    # -- the tick ----------------------------------------------------------------

    async def tick(self) -> int:
        """Fire what is due; returns how many tasks were created."""
        rt = self._rt
        now = rt.clock.now()
        created = 0
        for row in await rt.store.due_schedules(now, DUE_BATCH):
            try:
                spec = decode(row)
                plan = cron.plan(
                    spec.cron, spec.timezone, row.last_fire_at, now,
                    spec.catchup, spec.max_catchup_s,
                )  # fmt: skip
            except Exception as exc:
                # Stored before a rule it breaks existed, or made unplannable by a zone
                # database or croniter upgrade: stop it, rather than fail every tick and
                # hold up every schedule due after it; a PUT with a valid config brings
                # it back.
                log.error("schedule %s of %s is paused: it can no longer be planned (%s)",
                          row.name, row.tenant_id, exc)  # fmt: skip
                await rt.store.pause_schedule(row.tenant_id, row.name, True, None, now)
                continue
            tasks, skipped = await self._tasks(row, spec, plan.fire, now), plan.skipped
            skipped += len(plan.fire) - len(tasks)
            if await rt.store.fire_schedule(row, plan.last, plan.next_at, skipped, tasks, now):
                created += len(tasks)
                self._meters.fired(row.tenant_id, tasks)
                if skipped:
                    log.warning("schedule %s skipped %d fire times", row.name, skipped)
                if any(t.state == "ready" for t in tasks):
                    self._queues.notify(row.tenant_id)
        return created

    async def _tasks(
        self, row: ScheduleRow, spec: ScheduleSpec, fires: list[float], now: float
    ) -> list[NewTask]:
        functions = await self._functions.usable(row.tenant_id)
        out = []
        for at in fires:
            try:
                out.append(
                    build_task(self._task_spec(row.name, spec, at), functions.get(spec.function),
                               self._rt.settings, now, "", new_task_id(now))
                )  # fmt: skip
            except SluiceError as exc:  # the function's config changed under the schedule
                log.error("schedule %s cannot fire at %.0f: %s", row.name, at, exc)
        return await self._fairness.tag(row.tenant_id, out)

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
