"""Plain functions run on the worker's loop only while every call is shorter than a
thread hand-off, and go back to threads for good after one slow inline call."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sluice.policy.inline import BELOW_S, PROMOTE_AFTER, SLOW_S, WALL_S, Inline


def test_inline_after_enough_short_calls_in_a_row() -> None:
    p = Inline()
    for _ in range(PROMOTE_AFTER - 1):
        p.ran(0.0001)
    assert not p.inline
    p.ran(0.0001)
    assert p.inline


def test_a_slow_call_in_a_thread_starts_the_count_again() -> None:
    p = Inline()
    for _ in range(PROMOTE_AFTER - 1):
        p.ran(0.0001)
    p.ran(WALL_S * 2)
    for _ in range(PROMOTE_AFTER - 1):
        p.ran(0.0001)
    assert not p.inline
    p.ran(0.0001)
    assert p.inline


def test_a_call_between_short_and_slow_neither_counts_nor_resets() -> None:
    p = Inline()
    for _ in range(PROMOTE_AFTER - 1):
        p.ran(0.0001)
        p.ran(BELOW_S * 2)  # a thread that waited for the GIL, say
    assert not p.inline
    p.ran(0.0001)
    assert p.inline


def test_a_slow_inline_call_sends_the_function_back_to_threads_for_good() -> None:
    p = Inline()
    for _ in range(PROMOTE_AFTER):
        p.ran(0.0001)
    p.ran(SLOW_S / 2)  # tolerated: still cheap on the loop
    assert p.inline
    p.ran(SLOW_S * 2)
    assert not p.inline and p.demoted
    for _ in range(PROMOTE_AFTER * 10):
        p.ran(0.0001)
    assert not p.inline


def test_io_bound_functions_never_run_inline() -> None:
    p = Inline()
    for _ in range(1000):
        p.ran(0.02, cpu_s=0.0002)  # an HTTP call: little CPU, long wall time
    assert not p.inline


def test_a_call_in_a_thread_is_judged_by_its_cpu_within_the_wall_bound() -> None:
    p = Inline()
    for _ in range(PROMOTE_AFTER):
        p.ran(0.004, cpu_s=0.0001)  # waited 4 ms for the GIL in a busy worker
    assert p.inline
    p = Inline()
    for _ in range(PROMOTE_AFTER * 2):
        p.ran(0.001, cpu_s=BELOW_S * 2)  # real work: not short
    assert not p.inline


@given(st.lists(st.floats(min_value=0, max_value=10), max_size=300))
def test_the_loop_is_blocked_by_at_most_one_slow_call(calls: list[float]) -> None:
    p = Inline()
    slow_inline = 0
    for seconds in calls:
        if p.inline and seconds > SLOW_S:
            slow_inline += 1
        p.ran(seconds)
    assert slow_inline <= 1


def test_an_inline_call_only_preempted_by_the_os_keeps_it_inline() -> None:
    p = Inline()
    for _ in range(PROMOTE_AFTER):
        p.ran(0.0001)
    p.ran(0.015, cpu_s=0.0001, blocked=False)  # descheduled for 15 ms, never waited
    assert p.inline
    p.ran(0.015, cpu_s=0.0001, blocked=True)  # waited 15 ms on a socket
    assert not p.inline and p.demoted


def test_an_inline_call_that_computes_past_the_bound_sends_it_back() -> None:
    p = Inline()
    for _ in range(PROMOTE_AFTER):
        p.ran(0.0001)
    p.ran(0.005, cpu_s=0.005, blocked=False)
    assert p.demoted
