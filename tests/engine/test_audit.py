"""The audit log alone: entries at fake-clock time, purged past their retention
(engine/audit.py)."""

from __future__ import annotations

import logging

import pytest

from sluice.clock import FakeClock
from sluice.contract import Selector
from sluice.engine.audit import ADMIN, AuditLog, key_actor
from sluice.engine.runtime import Runtime
from tests.engine.conftest import with_settings


async def test_an_action_is_recorded_with_its_actor_selector_count_and_fake_time(
    rt: Runtime, clock: FakeClock
) -> None:
    audit = AuditLog(rt)

    await audit.record(key_actor("abc"), "acme", "tasks.cancel",
                       selector=Selector(function=["send"]), count=3)  # fmt: skip
    clock.advance(5)
    await audit.record(ADMIN, None, "tenant.create", detail="globex")

    newest, oldest = await audit.list(None, "", 10)
    assert (oldest.actor, oldest.action, oldest.count) == ("key:abc", "tasks.cancel", 3)
    assert oldest.selector == '{"function":["send"]}'
    assert (oldest.at, newest.at) == (clock.now() - 5, clock.now())
    assert [e.action for e in await audit.list("acme", "", 10)] == ["tasks.cancel"]


async def test_entries_are_purged_once_past_their_retention_on_the_fake_clock(
    rt: Runtime, clock: FakeClock
) -> None:
    audit = AuditLog(with_settings(rt, audit_retention_s=100.0))
    await audit.record(ADMIN, "acme", "pause.create")
    clock.advance(60)
    await audit.record(ADMIN, "acme", "pause.delete")

    clock.advance(39)
    assert await audit.purge_once() == 0
    clock.advance(2)
    assert await audit.purge_once() == 1
    assert [e.action for e in await audit.list("acme", "", 10)] == ["pause.delete"]


async def test_a_failed_write_is_logged_and_does_not_fail_the_action(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    audit = AuditLog(rt)
    await rt.store.close()  # the store is gone: the write fails

    with caplog.at_level(logging.ERROR, logger="sluice.audit"):
        await audit.record(ADMIN, "acme", "tasks.delete")

    assert "could not record tasks.delete by admin" in caplog.text
