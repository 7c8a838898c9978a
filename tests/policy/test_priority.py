"""Priority floors: the dispatch shares of DESIGN §6, and no starvation."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.policy.priority import PriorityFloors


def simulate(backlogged: set[int], decisions: int, batch: int = 1) -> Counter[int]:
    """Serve `decisions` slots from levels that never run dry, `batch` slots per plan,
    telling the policy what each claim found (strict claims take the highest level)."""
    floors = PriorityFloors()
    served: Counter[int] = Counter()
    for _ in range(decisions // batch):
        for level, n in floors.plan(batch):
            target = max(backlogged) if level is None else level
            got = n if target in backlogged else 0
            floors.claimed(level, n, got)
            if got:
                served[target] += got
    return served


def test_all_ten_levels_backlogged_share_as_the_design_says() -> None:
    served = simulate(set(range(10)), 10_000)

    shares = {p: served[p] / sum(served.values()) for p in range(10)}
    assert shares[9] == pytest.approx(0.82, abs=0.005)
    for p in range(9):
        assert shares[p] == pytest.approx(0.02, abs=0.005)


def test_levels_zero_and_nine_split_two_and_ninety_eight() -> None:
    served = simulate({0, 9}, 10_000)

    assert served[0] / 10_000 == pytest.approx(0.02, abs=0.005)
    assert served[9] / sum(served.values()) == pytest.approx(0.98, abs=0.005)


def test_a_single_backlogged_level_gets_every_dispatch_after_the_empty_ones_are_found() -> None:
    served = simulate({4}, 10_000, batch=100)

    assert set(served) == {4}
    assert served[4] >= 10_000 - 9 * 2  # a few probes of empty levels, then nothing is lost


def test_empty_levels_are_probed_once_until_new_work_arrives() -> None:
    floors = PriorityFloors()
    probes = 0
    for _ in range(20):
        for level, n in floors.plan(100):
            if level is not None and level != 9:
                probes += 1
            floors.claimed(level, n, n if level in (None, 9) else 0)
    assert probes == 9
    floors.refresh()
    assert any(level not in (None, 9) for level, _ in floors.plan(100))


def test_strict_claims_come_last_and_owed_levels_highest_first() -> None:
    floors = PriorityFloors()

    plan = floors.plan(100)

    levels = [level for level, _ in plan]
    assert levels[-1] is None
    assert levels[:-1] == sorted(levels[:-1], reverse=True)  # type: ignore[type-var]
    assert sum(n for _, n in plan) == 100


def test_floors_that_sum_to_one_or_more_are_refused() -> None:
    with pytest.raises(ValueError):
        PriorityFloors(floor=0.2)


@settings(max_examples=60, deadline=None)
@given(
    backlogged=st.sets(st.integers(0, 9), min_size=1),
    decisions=st.integers(100, 3000),
    batch=st.sampled_from([1, 7, 64]),
)
def test_every_backlogged_level_gets_its_floor_and_waits_a_bounded_time(
    backlogged: set[int], decisions: int, batch: int
) -> None:
    floors = PriorityFloors()
    served: Counter[int] = Counter()
    first: dict[int, int] = {}
    n = 0
    for _ in range(decisions // batch):
        for level, k in floors.plan(batch):
            target = max(backlogged) if level is None else level
            got = k if target in backlogged else 0
            floors.claimed(level, k, got)
            if got:
                served[target] += got
                first.setdefault(target, n)
            n += k
    total = (decisions // batch) * batch
    for p in backlogged:
        # ALGORITHMS.md §4.3: a continuously backlogged level gets >= floor(N f) - CAP,
        # less the slots spent finding the empty levels (at most one plan each).
        assert served[p] >= int(total * 0.02) - 10 - 9 * batch
        # ... and its first dispatch comes within 1/f decisions, plus one plan.
        assert first.get(p, total) <= 50 + 10 * batch or total < 50 + 10 * batch


def test_a_strict_claim_shows_the_top_level_so_one_busy_level_costs_one_claim() -> None:
    floors = PriorityFloors()
    floors.claimed(None, 256, 256, top=5)  # the first round: everything came from level 5

    plans = [floors.plan(256) for _ in range(3)]
    for level, n in plans[-1]:
        floors.claimed(level, n, n if level in (None, 5) else 0, top=5 if level is None else None)

    assert plans[0][-1] == (None, plans[0][-1][1])
    # Once levels 0-4 are found empty, every plan is a single strict claim.
    later = [floors.plan(256) for _ in range(5)]
    assert all(plan == [(None, 256)] for plan in later[1:])
