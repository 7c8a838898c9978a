"""The `held` stage (engine/holds.py): the part of a task's wait in which a limit held its
function, from the dispatcher's marks, claim by claim."""

from __future__ import annotations

from sluice.engine.holds import STALE_S, Holds
from sluice.model import ClaimedTask

T0 = 1_000.0


def task(function: str, ready: float, dispatched: float) -> ClaimedTask:
    return ClaimedTask(
        tenant_id="t", id=f"{function}-{ready}", function=function, payload=b"{}", attempt=1,
        max_attempts=3, timeout_s=None, priority=5, created_at=ready, dispatched_at=dispatched,
        lease_until=dispatched + 30, ready_at=ready,
    )  # fmt: skip


def test_nothing_held_leaves_the_tasks_as_they_are() -> None:
    holds = Holds()
    tasks = [task("f", T0, T0 + 1)]
    assert holds.stamp(tasks, T0 + 1) is tasks


def test_a_task_is_held_for_the_part_of_its_wait_a_limit_held_its_function() -> None:
    holds = Holds()
    holds.held("t", ["f"], T0 + 1)  # a rate held f from 1 s after the task was ready
    holds.held("t", ["f"], T0 + 2)  # and again at the next allowed start
    holds.free("t", ["f"], T0 + 3)  # the claim that took it was not held
    (stamped,) = holds.stamp([task("f", T0, T0 + 3)], T0 + 3)
    assert stamped.held_s == 2.0
    (other,) = holds.stamp([task("g", T0, T0 + 3)], T0 + 3)  # another function: not held
    assert other.held_s == 0.0


def test_an_episode_still_open_counts_until_the_dispatch() -> None:
    holds = Holds()
    holds.held("t", ["f"], T0)
    holds.held("t", ["f"], T0 + 1)
    (stamped,) = holds.stamp([task("f", T0 + 0.5, T0 + 1.5)], T0 + 1.5)
    assert stamped.held_s == 1.0


def test_an_episode_not_marked_again_ends_where_it_was_last_seen() -> None:
    holds = Holds()
    holds.held("t", ["f"], T0)  # then the limit was lifted: no more marks
    (stamped,) = holds.stamp([task("f", T0, T0 + 60)], T0 + 60)
    assert stamped.held_s == STALE_S
    holds.held("t", ["f"], T0 + 100)  # a new episode, after the stale one
    holds.free("t", ["f"], T0 + 101)
    (later,) = holds.stamp([task("f", T0 + 99, T0 + 101)], T0 + 101)
    assert later.held_s == 1.0
