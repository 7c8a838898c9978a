"""Cron schedule routes: `/v1/schedules`."""

from __future__ import annotations

import msgspec

from ..contract import Schedule, ScheduleList, ScheduleSpec
from ..model import ScheduleRow
from .route import Call, Handler, Route


class _Stored(msgspec.Struct):
    """A schedule's config as stored, read without today's rules, so a schedule saved
    before a rule it breaks (and paused for it) can still be shown and replaced."""

    function: str
    cron: str
    timezone: str = "UTC"
    args: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"[]"))
    kwargs: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))
    priority: int | None = None
    tags: list[str] | None = None
    catchup: str = "all"
    max_catchup_s: float = 600.0


_stored_decoder = msgspec.json.Decoder(_Stored)


def schedule_view(row: ScheduleRow) -> Schedule:
    spec = _stored_decoder.decode(row.config)
    return Schedule(
        name=row.name, function=spec.function, cron=spec.cron, timezone=spec.timezone,
        args=spec.args, kwargs=spec.kwargs, priority=spec.priority, tags=spec.tags,
        catchup=spec.catchup, max_catchup_s=spec.max_catchup_s, paused=row.paused,
        created_at=row.created_at, last_fire_at=row.last_fire_at, next_fire_at=row.next_fire_at,
        fired=row.fired, skipped=row.skipped,
    )  # fmt: skip


async def put_schedule(call: Call) -> Schedule:
    name = call.path["name"]
    row = await call.node.schedules.put(call.tenant, name, call.body)
    await call.node.audit.record(call.caller.actor, call.tenant, "schedule.put", detail=name)
    return schedule_view(row)


async def list_schedules(call: Call) -> ScheduleList:
    rows = await call.node.schedules.list_all(call.tenant)
    return ScheduleList([schedule_view(r) for r in rows])


async def get_schedule(call: Call) -> Schedule:
    return schedule_view(await call.node.schedules.get(call.tenant, call.path["name"]))


async def delete_schedule(call: Call) -> None:
    name = call.path["name"]
    await call.node.schedules.delete(call.tenant, name)
    await call.node.audit.record(call.caller.actor, call.tenant, "schedule.delete", detail=name)


def pause(paused: bool) -> Handler:
    async def handler(call: Call) -> Schedule:
        name = call.path["name"]
        row = await call.node.schedules.pause(call.tenant, name, paused)
        action = "schedule.pause" if paused else "schedule.resume"
        await call.node.audit.record(call.caller.actor, call.tenant, action, detail=name)
        return schedule_view(row)

    return handler


SCHEDULE_ROUTES = [
    Route("PUT", "/v1/schedules/{name}", "putSchedule",
          "Create or replace a cron schedule (a replaced one keeps its firing state)",
          put_schedule, {200: Schedule}, body=ScheduleSpec, tags=("schedules",)),
    Route("GET", "/v1/schedules", "listSchedules", "The tenant's cron schedules",
          list_schedules, {200: ScheduleList}, tags=("schedules",)),
    Route("GET", "/v1/schedules/{name}", "getSchedule", "One cron schedule", get_schedule,
          {200: Schedule}, tags=("schedules",)),
    Route("DELETE", "/v1/schedules/{name}", "deleteSchedule", "Delete a cron schedule",
          delete_schedule, {204: None}, tags=("schedules",)),
    Route("POST", "/v1/schedules/{name}/pause", "pauseSchedule", "Pause a cron schedule",
          pause(True), {200: Schedule}, tags=("schedules",)),
    Route("POST", "/v1/schedules/{name}/resume", "resumeSchedule",
          "Resume a cron schedule from now (missed fires are not run)", pause(False),
          {200: Schedule}, tags=("schedules",)),
]  # fmt: skip
