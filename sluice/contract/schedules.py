"""Cron schedules."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from ..model import (
    DAY_S,
)
from .fields import FunctionName, JsonArray, JsonObject, Priority, Tags

MAX_CATCHUP_S: Final = 7 * DAY_S
# Five fields, or six with seconds first, of croniter's characters; whether the fields
# make sense (and ever fire) is checked by croniter (a 422 when not).
Cron = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9A-Za-z*/,?#-]+( +[0-9A-Za-z*/,?#-]+){4,5}$", max_length=256)
]
# An IANA zone name; whether the zone exists is for the zone database to say (a 422).
TimeZone = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$",
                                       max_length=64)]  # fmt: skip


class ScheduleSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A cron schedule as a user writes it (the body of `PUT /v1/schedules/{name}`)."""

    function: FunctionName
    cron: Cron
    timezone: TimeZone = "UTC"
    args: JsonArray = msgspec.field(default_factory=lambda: msgspec.Raw(b"[]"))
    kwargs: JsonObject = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))
    priority: Priority | None = None
    tags: Tags | None = None
    catchup: Literal["all", "latest", "none"] = "all"  # policy/cron.py
    max_catchup_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_CATCHUP_S)] = 600.0


class Schedule(msgspec.Struct, frozen=True):
    """A cron schedule: its spec and its firing state. Each fire submits a task keyed
    `sluice:cron:{name}:{fire_epoch_seconds}`."""

    name: str
    function: str
    cron: str
    timezone: str
    args: Any
    kwargs: Any
    priority: int | None
    tags: list[str] | None
    catchup: str  # "all", "latest" or "none"
    max_catchup_s: float
    paused: bool
    created_at: float
    last_fire_at: float  # every fire time up to here was run or skipped
    next_fire_at: float | None
    fired: int
    skipped: int


class ScheduleList(msgspec.Struct, frozen=True):
    schedules: list[Schedule]
