"""Retention alone: ended tasks are deleted `retention_s` after they ended, on the fake
clock (engine/retention.py).

Task ids are time-ordered on the clock that made them (model.new_task_ids takes the
engine's `now`), and the store's purge walks ids below the cutoff's id floor: a fake
clock set anywhere, even in the wall clock's past, purges on its own time.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from sluice.clock import FakeClock
from sluice.engine.retention import Retention
from sluice.engine.runtime import Runtime
from tests.engine.conftest import make_function, make_task, make_tenant, with_settings

RETENTION_S = 3600.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=time.time())  # lined up with the ids' wall clock (see above)


async def test_ended_tasks_are_purged_once_past_their_retention_and_no_sooner(
    rt: Runtime, clock: FakeClock
) -> None:
    rt = with_settings(rt, retention_s=RETENTION_S)
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    ended, waiting = await make_task(rt, tenant, send), await make_task(rt, tenant, send)
    await rt.store.cancel_tasks(tenant, [ended], clock.now())
    retention = Retention(rt)

    clock.advance(RETENTION_S - 1)
    assert await retention.purge_once() == 0
    clock.advance(2)
    assert await retention.purge_once() == 1

    assert await rt.store.get_task(tenant, ended) is None
    assert await rt.store.get_task(tenant, waiting) is not None  # not ended: kept


async def test_a_fake_clock_in_the_wall_clocks_past_purges_what_ended_past_retention(
    rt: Runtime,
) -> None:
    past = FakeClock()  # 2023-11-14, the default start
    rt = replace(with_settings(rt, retention_s=RETENTION_S), clock=past)
    tenant = await make_tenant(rt)
    send = await make_function(rt, tenant)
    ended = await make_task(rt, tenant, send)
    await rt.store.cancel_tasks(tenant, [ended], past.now())

    past.advance(RETENTION_S + 1)
    assert await Retention(rt).purge_once() == 1
