"""Queues alone: what the dispatcher learns without a query (engine/queues.py)."""

from __future__ import annotations

from sluice.engine.queues import WHOLE, Queues
from sluice.engine.runtime import Runtime
from sluice.model import SHARED
from tests.engine.conftest import heard


def test_notify_bumps_the_tenants_generation_wakes_the_dispatcher_and_tells_the_others(
    rt: Runtime,
) -> None:
    queues = Queues(rt.bus)
    queues.hint("other")
    queues.woken.clear()
    before = dict(queues.generation)

    queues.notify("acme", levels=[5], functions=["send"])

    assert queues.generation["acme"] == before.get("acme", 0) + 1
    assert queues.generation[SHARED] == before[SHARED] + 1  # shared pools serve everyone
    assert queues.generation["other"] == before["other"]
    assert queues.woken.is_set()
    assert heard(rt, "ready") == ["acme"]


def test_a_hint_from_a_shared_pool_bumps_every_tenants_generation(rt: Runtime) -> None:
    queues = Queues(rt.bus)
    for tenant in ("acme", "globex"):
        queues.hint(tenant)
    queues.drained[("acme", "send")] = True
    queues.drained[("globex", "resize")] = True
    before = dict(queues.generation)

    queues.hint(SHARED)

    assert {t: queues.generation[t] - before[t] for t in before} == {
        "acme": 1, "globex": 1, SHARED: 2,
    }  # fmt: skip
    assert queues.drained == {}
    assert heard(rt, "ready") == []  # a hint is what another node said: not sent back


def test_drained_marks_are_cleared_only_by_work_of_their_function(rt: Runtime) -> None:
    queues = Queues(rt.bus)
    for key in [("acme", "send"), ("acme", "resize"), ("acme", WHOLE + "send,resize"),
                ("globex", "send")]:  # fmt: skip
        queues.drained[key] = True

    queues.notify("acme", functions=["send"])

    assert set(queues.drained) == {("acme", "resize"), ("globex", "send")}
    queues.notify("acme")  # functions unknown: every mark of the tenant goes
    assert set(queues.drained) == {("globex", "send")}


def test_resync_forgets_the_empty_queues_and_is_taken_once(rt: Runtime) -> None:
    queues = Queues(rt.bus)
    queues.empty[("acme", ("send",))] = 3
    queues.plain_empty[("acme", ("send",))] = 3
    queues.drained[("acme", "send")] = True

    queues.resync()

    assert queues.empty == {} and queues.plain_empty == {}
    assert queues.drained == {("acme", "send"): True}  # kept: only new work clears it
    assert queues.woken.is_set()
    assert queues.resynced() is True
    assert queues.resynced() is False


def test_new_work_at_a_level_refreshes_only_that_levels_floor(rt: Runtime) -> None:
    queues = Queues(rt.bus)
    floors = queues.floors_of(("acme", ("send",)), queues.generation["acme"])
    floors.empty.update({2, 7})
    other = queues.floors_of(("globex", ("send",)), queues.generation["globex"])
    other.empty.add(7)

    queues.notify("acme", levels=[7])

    assert floors.empty == {2}
    assert other.empty == {7}
