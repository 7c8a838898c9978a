"""Cron schedules alone: their verbs checked, and the tick firing each time once as the
fake clock reaches it (engine/schedules.py)."""

from __future__ import annotations

import pytest

from sluice.clock import FakeClock
from sluice.contract import ScheduleSpec, Selector
from sluice.engine.runtime import Runtime
from sluice.engine.schedules import Schedules, fire_key
from sluice.errors import InvalidRequest, NotFound, SluiceError, Unprocessable
from sluice.model import READY
from tests.engine.conftest import FN, Lower, lower, make_function, make_tenant

EVERY_MINUTE = ScheduleSpec(function=FN, cron="* * * * *")
NEXT_MINUTE_S = 40.0  # the fake clock starts at 22:13:20 UTC


def schedules_of(below: Lower, rt: Runtime) -> Schedules:
    return Schedules(rt, below.functions, below.fairness, below.queues)


async def test_the_tick_fires_each_minute_once_as_the_fake_clock_reaches_it(
    rt: Runtime, clock: FakeClock
) -> None:
    below = lower(rt)
    schedules = schedules_of(below, rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)
    await schedules.put(tenant, "report", EVERY_MINUTE)

    assert await schedules.tick() == 0
    clock.advance(NEXT_MINUTE_S - 0.5)
    assert await schedules.tick() == 0
    clock.advance(0.5)
    assert await schedules.tick() == 1
    assert await schedules.tick() == 0  # that minute is done
    clock.advance(60.0)
    assert await schedules.tick() == 1

    first = fire_key("report", clock.now() - 60.0)
    (task,) = await rt.store.list_tasks(tenant, Selector(key=first), "", 10)
    assert task.state == READY
    assert below.queues.generation[tenant] == 2
    (row,) = await schedules.list_all(tenant)
    assert (row.fired, row.last_fire_at, row.next_fire_at) == (2, clock.now(), clock.now() + 60)


async def test_a_paused_schedule_does_not_fire_and_resumes_from_now(
    rt: Runtime, clock: FakeClock
) -> None:
    schedules = schedules_of(lower(rt), rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)
    await schedules.put(tenant, "report", EVERY_MINUTE)

    assert (await schedules.pause(tenant, "report", True)).paused
    clock.advance(NEXT_MINUTE_S + 190)  # four minutes missed; 22:17:10 now
    assert await schedules.tick() == 0
    resumed = await schedules.pause(tenant, "report", False)
    assert await schedules.tick() == 0  # the minutes missed while paused are not run
    assert resumed.next_fire_at == clock.now() + 50.0  # 22:18:00


@pytest.mark.parametrize(
    ("spec", "refused", "code"),
    [
        (ScheduleSpec(function=FN, cron="61 * * * *"), Unprocessable, "invalid_cron"),
        (
            ScheduleSpec(function=FN, cron="* * * * *", timezone="Mars/Olympus"),
            Unprocessable,
            "unknown_timezone",
        ),
        (ScheduleSpec(function=FN, cron="0 0 30 2 *"), Unprocessable, "never_fires"),
        (ScheduleSpec(function="unknown", cron="* * * * *"), NotFound, "unknown_function"),
    ],
)
async def test_a_schedule_that_could_not_fire_a_valid_task_is_refused(
    rt: Runtime, spec: ScheduleSpec, refused: type[SluiceError], code: str
) -> None:
    schedules = schedules_of(lower(rt), rt)
    tenant = await make_tenant(rt)
    await make_function(rt, tenant)

    with pytest.raises(refused) as raised:
        await schedules.put(tenant, "report", spec)

    assert raised.value.code == code
    assert await schedules.list_all(tenant) == []


async def test_names_are_checked_and_unknown_schedules_are_not_found(rt: Runtime) -> None:
    schedules = schedules_of(lower(rt), rt)
    with pytest.raises(InvalidRequest):
        await schedules.put("acme", "bad name", EVERY_MINUTE)
    with pytest.raises(NotFound):
        await schedules.delete("acme", "report")
    with pytest.raises(NotFound):
        await schedules.get("acme", "report")
