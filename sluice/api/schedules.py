"""Cron schedule routes: `/v1/schedules`."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post, put

from ..model import ScheduleRow, ScheduleSpec
from .routes import _body, _decode, _json, caller_of, decoder, node_of, tenant_of
from .schemas import ScheduleList, ScheduleView

_spec_decoder = decoder(ScheduleSpec)


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


def schedule_view(row: ScheduleRow) -> ScheduleView:
    spec = _stored_decoder.decode(row.config)
    return ScheduleView(
        name=row.name, function=spec.function, cron=spec.cron, timezone=spec.timezone,
        args=spec.args, kwargs=spec.kwargs, priority=spec.priority, tags=spec.tags,
        catchup=spec.catchup, max_catchup_s=spec.max_catchup_s, paused=row.paused,
        created_at=row.created_at, last_fire_at=row.last_fire_at, next_fire_at=row.next_fire_at,
        fired=row.fired, skipped=row.skipped,
    )  # fmt: skip


@put("/v1/schedules/{name:str}", summary="Create or replace a cron schedule", tags=["schedules"])
async def put_schedule(request: Request[Any, Any, Any]) -> Response[ScheduleView]:
    tenant_id, actor = await caller_of(request)
    spec = _decode(_spec_decoder, await _body(request, 512 * 1024))
    node, name = node_of(request.app.state), request.path_params["name"]
    row = await node.schedules.put(tenant_id, name, spec)
    await node.audit.record(actor, tenant_id, "schedule.put", detail=name)
    return _json(schedule_view(row))  # type: ignore[return-value]


@get("/v1/schedules", summary="The tenant's cron schedules", tags=["schedules"])
async def list_schedules(request: Request[Any, Any, Any]) -> Response[ScheduleList]:
    tenant_id = await tenant_of(request)
    rows = await node_of(request.app.state).schedules.list_all(tenant_id)
    return _json(ScheduleList([schedule_view(r) for r in rows]))  # type: ignore[return-value]


@get("/v1/schedules/{name:str}", summary="One cron schedule", tags=["schedules"])
async def get_schedule(request: Request[Any, Any, Any]) -> Response[ScheduleView]:
    tenant_id = await tenant_of(request)
    row = await node_of(request.app.state).schedules.get(tenant_id, request.path_params["name"])
    return _json(schedule_view(row))  # type: ignore[return-value]


@delete("/v1/schedules/{name:str}", status_code=204, summary="Delete a cron schedule",
        tags=["schedules"])  # fmt: skip
async def delete_schedule(request: Request[Any, Any, Any]) -> None:
    tenant_id, actor = await caller_of(request)
    node, name = node_of(request.app.state), request.path_params["name"]
    await node.schedules.delete(tenant_id, name)
    await node.audit.record(actor, tenant_id, "schedule.delete", detail=name)


async def _pause(request: Request[Any, Any, Any], paused: bool) -> Response[ScheduleView]:
    tenant_id, actor = await caller_of(request)
    node, name = node_of(request.app.state), request.path_params["name"]
    row = await node.schedules.pause(tenant_id, name, paused)
    action = "schedule.pause" if paused else "schedule.resume"
    await node.audit.record(actor, tenant_id, action, detail=name)
    return _json(schedule_view(row))  # type: ignore[return-value]


@post("/v1/schedules/{name:str}/pause", status_code=200, summary="Pause a cron schedule",
      tags=["schedules"])  # fmt: skip
async def pause_schedule(request: Request[Any, Any, Any]) -> Response[ScheduleView]:
    return await _pause(request, True)


@post("/v1/schedules/{name:str}/resume", status_code=200,
      summary="Resume a cron schedule from now (missed fires are not run)",
      tags=["schedules"])  # fmt: skip
async def resume_schedule(request: Request[Any, Any, Any]) -> Response[ScheduleView]:
    return await _pause(request, False)


SCHEDULE_ROUTES = [
    put_schedule, list_schedules, get_schedule, delete_schedule, pause_schedule, resume_schedule,
]  # fmt: skip
