"""AIMD against a simulated downstream (ALGORITHMS.md §1.4): a discrete-event target of
capacity C that answers 429 at once above C, a fake clock, a backlog that never ends."""

from __future__ import annotations

import heapq
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.policy.aimd import ERROR, OK, THROTTLED, Aimd

STEP_S = 0.005


class Target:
    """Serves `capacity` requests at once, each for `latency_s`; refuses the rest at once."""

    def __init__(self, capacity: int, latency_s: float = 0.1) -> None:
        self.capacity = capacity
        self.latency_s = latency_s
        self.busy = 0
        self.answers: list[tuple[float, int, str, int, float]] = []  # heap: due, seq, ...
        self._seq = itertools.count()
        self.ok = self.refused = 0

    def send(self, now: float, epoch: int) -> None:
        if self.busy < self.capacity:
            self.busy += 1
            item = (now + self.latency_s, next(self._seq), OK, epoch, self.latency_s)
        else:
            item = (now + 0.001, next(self._seq), THROTTLED, epoch, 0.001)
        heapq.heappush(self.answers, item)

    def due(self, now: float) -> list[tuple[str, int, float]]:
        out = []
        while self.answers and self.answers[0][0] <= now:
            _, _, kind, epoch, latency = heapq.heappop(self.answers)
            if kind == OK:
                self.busy -= 1
                self.ok += 1
            else:
                self.refused += 1
            out.append((kind, epoch, latency))
        return out


def simulate(aimd: Aimd, target: Target, seconds: float, start: float = 0.0) -> list[float]:
    """Run with an endless backlog; L at the end of every closed window."""
    limits = []
    now = start
    while now < start + seconds:
        for kind, epoch, latency in target.due(now):
            aimd.answered(kind, epoch, now, latency_s=latency)
        for _ in range(aimd.room(now)):
            target.send(now, aimd.sent())
        if aimd.tick(now, backlog=True):
            limits.append(aimd.limit)
        now += STEP_S
    return limits


def test_converges_to_the_capacity_and_stays_near_it() -> None:
    aimd, target = Aimd(now=0.0), Target(capacity=40)
    limits = simulate(aimd, target, 40.0)
    reached = next(i for i, limit in enumerate(limits) if limit >= 0.7 * 40)
    assert reached <= (40 - 10) + 2  # one step a window from 10: about 30 windows
    target.ok = target.refused = 0
    steady = simulate(aimd, target, 500.0, start=40.0)
    # The sawtooth: cut to 0.7 of just above C, climb back by one a window.
    assert min(steady) >= int(0.7 * 41) and max(steady) <= 41 + 1
    assert 0.8 * 40 <= sum(steady) / len(steady) <= 1.2 * 40
    assert target.refused / (target.ok + target.refused) < 0.05  # cut early: few 429s


def test_follows_the_capacity_down_and_up() -> None:
    aimd, target = Aimd(now=0.0), Target(capacity=40)
    simulate(aimd, target, 60.0)
    target.capacity = 20
    after_halving = simulate(aimd, target, 60.0, start=60.0)
    assert max(after_halving[-30:]) <= 21 + 1 and min(after_halving[-30:]) >= int(0.7 * 21)
    target.capacity = 60
    recovered = simulate(aimd, target, 80.0, start=120.0)
    assert max(recovered) >= 55


def test_both_thresholds_are_needed_for_a_cut() -> None:
    aimd = Aimd(now=0.0, initial=50)
    epoch = aimd.sent(100)
    for _ in range(4):  # four throttles, whatever their share: no cut
        aimd.answered(THROTTLED, epoch, 0.1)
    assert aimd.limit == 50
    aimd = Aimd(now=0.0, initial=50)
    epoch = aimd.sent(100)
    for _ in range(60):  # plenty of successes first
        aimd.answered(OK, epoch, 0.1)
    for _ in range(5):  # five throttles, 7.7 % of the answers: no cut
        aimd.answered(THROTTLED, epoch, 0.2)
    assert not aimd.answered(THROTTLED, epoch, 0.25)  # the sixth: 9.1 %
    assert aimd.limit == 50
    assert aimd.answered(THROTTLED, epoch, 0.3)  # the seventh: 10.4 %, cut
    assert aimd.limit == 35


def test_one_cut_per_window_and_stale_throttles_are_ignored() -> None:
    aimd = Aimd(now=0.0, initial=100)
    epoch = aimd.sent(100)
    cuts = sum(aimd.answered(THROTTLED, epoch, 0.1) for _ in range(100))
    assert cuts == 1 and aimd.limit == 70  # the rest were sent before the cut


def test_no_growth_without_backlog_or_while_the_caller_is_the_limit() -> None:
    aimd = Aimd(now=0.0, initial=10)
    epoch = aimd.sent(2)  # peak in flight 2 < L/2
    aimd.answered(OK, epoch, 0.5, latency_s=0.1)
    aimd.answered(OK, epoch, 0.6, latency_s=0.1)
    assert aimd.tick(1.0, backlog=True) and aimd.limit == 10
    epoch = aimd.sent(8)
    for _ in range(8):
        aimd.answered(OK, epoch, 1.5, latency_s=0.1)
    assert aimd.tick(2.0, backlog=False) and aimd.limit == 10  # no backlog
    epoch = aimd.sent(8)
    for _ in range(8):
        aimd.answered(OK, epoch, 2.5, latency_s=0.1)
    assert aimd.tick(3.0, backlog=True) and aimd.limit == 11


def test_retry_after_pauses_the_target_exactly_that_long_capped() -> None:
    aimd = Aimd(now=0.0)
    epoch = aimd.sent()
    aimd.answered(THROTTLED, epoch, 10.0, retry_after_s=7)
    assert aimd.room(16.999) == 0 and aimd.room(17.0) == 10
    aimd.answered(THROTTLED, epoch, 20.0, retry_after_s=10_000)
    assert aimd.room(319.9) == 0 and aimd.room(320.0) > 0


def test_errors_never_cut_and_the_window_follows_latency() -> None:
    aimd = Aimd(now=0.0, initial=20)
    epoch = aimd.sent(20)
    for _ in range(20):
        aimd.answered(ERROR, epoch, 0.1, latency_s=4.0)
    assert aimd.limit == 20
    assert aimd.window_s == 8.0  # 2 x p50
    assert Aimd(now=0.0).window_s == 1.0


def test_max_concurrency_caps_growth() -> None:
    aimd, target = Aimd(now=0.0, maximum=15), Target(capacity=40)
    assert max(simulate(aimd, target, 30.0)) == 15
    aimd.cap(12)
    assert aimd.limit == 12


@settings(max_examples=80, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from([OK, THROTTLED, ERROR, "tick", "send"]),
            st.floats(min_value=0, max_value=3),
            st.booleans(),
        ),
        max_size=300,
    ),
    maximum=st.integers(min_value=1, max_value=200),
)
def test_the_limit_stays_between_its_bounds(
    events: list[tuple[str, float, bool]], maximum: int
) -> None:
    aimd = Aimd(now=0.0, maximum=maximum)
    now = 0.0
    for kind, dt, flag in events:
        now += dt
        if kind == "send":
            aimd.sent(3)
        elif kind == "tick":
            aimd.tick(now, backlog=flag)
        else:
            aimd.answered(kind, aimd.epoch - (1 if flag else 0), now, latency_s=dt)
        assert 1 <= aimd.limit <= maximum
        assert aimd.inflight >= 0
