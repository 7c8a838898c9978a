"""Headroom on a shared pool: the last free slot kept for the tenants below their share
while a heavy one has more, and every slot for a tenant alone (policy/headroom.py)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from sluice.policy.headroom import Active, plan


def test_a_tenant_alone_gets_every_slot() -> None:
    assert plan(8, 8, Counter(), active=1, headroom=1) is None
    assert plan(8, 1, Counter(a=7), active=1, headroom=1) is None


def test_a_heavy_tenant_beside_a_quiet_one_leaves_the_last_slot() -> None:
    # 8 slots, A runs 4 (its share of 2 active tenants): 4 free, 3 for anyone in fair order.
    assert plan(8, 4, Counter(a=4), active=2, headroom=1) == (3, frozenset())
    # One left: only for the others.
    assert plan(8, 1, Counter(a=7), active=2, headroom=1) == (1, frozenset({"a"}))
    assert plan(8, 0, Counter(a=7, b=1), active=2, headroom=1) == (0, frozenset({"a"}))


def test_the_last_slot_goes_to_whoever_runs_less_than_a_share() -> None:
    # 3 active tenants on 9 slots: a share is 3; nobody runs 3, nobody is left out.
    assert plan(9, 1, Counter(a=4, b=2, c=2), active=3, headroom=1) == (1, frozenset({"a"}))
    assert plan(9, 1, Counter(a=2, b=2, c=2), active=4, headroom=1) == (1, frozenset())


def test_two_floods_share_the_pool_without_an_idle_slot() -> None:
    # A and B flood 8 slots: the slot B's task freed goes to B (3, below its share of 4).
    assert plan(8, 1, Counter(a=4, b=3), active=2, headroom=1) == (1, frozenset({"a"}))
    # Both at their share: nobody else to keep a slot for.
    assert plan(8, 1, Counter(a=4, b=4), active=2, headroom=1) is None


def test_shares_follow_the_weights() -> None:
    # Weights 3:1 on 8 slots: shares 6 and 2. A at 6 and B at 2 are both at theirs.
    weights = {"a": 3.0, "b": 1.0}
    assert plan(8, 1, Counter(a=6, b=1), 2, 1, weights, 4.0) == (1, frozenset({"a"}))
    assert plan(8, 0, Counter(a=6, b=2), 2, 1, weights, 4.0) is None
    # Unweighted, A at 6 of 8 would be far past its share of 4, and B at 2 below it.
    assert plan(8, 1, Counter(a=5, b=2), 2, 1) == (1, frozenset({"a"}))


def test_a_slot_kept_per_quiet_tenant_up_to_a_quarter() -> None:
    # A floods 8 slots beside B and C: 2 kept, so both start when they submit together.
    assert plan(8, 3, Counter(a=5), active=3, headroom=1) == (1, frozenset())
    assert plan(8, 2, Counter(a=6), active=3, headroom=1) == (2, frozenset({"a"}))
    # Ten quiet tenants around: still a quarter of the slots at most.
    assert plan(8, 3, Counter(a=5), active=11, headroom=1) == (1, frozenset())


def test_off_or_too_few_slots_to_keep_one() -> None:
    assert plan(8, 1, Counter(a=7), active=2, headroom=0) is None
    assert plan(3, 1, Counter(a=2), active=2, headroom=1) is None


@given(
    slots=st.integers(1, 64),
    running=st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 64), max_size=6),
    extra=st.integers(0, 4),
    keep=st.integers(0, 4),
)
def test_never_more_than_the_free_slots_and_never_a_light_tenant_left_out(
    slots: int, running: dict[str, int], extra: int, keep: int
) -> None:
    counts = Counter({t: n for t, n in running.items() if n})
    free = slots - sum(counts.values())
    active = len(counts) + extra
    out = plan(slots, free, counts, active, keep)
    if out is None:
        return
    limit, heavy = out
    assert 0 <= limit <= max(0, free)
    assert all(counts[t] >= slots / active for t in heavy)
    kept = max(0, free) - limit
    assert kept <= slots // 4  # never more than a quarter of the slots held back
    if heavy:  # the headroom itself: all of it, to those below their share
        assert kept == 0 and free <= slots // 4
        assert len(heavy) < active  # someone it is kept for


def test_active_tenants_expire_after_the_window() -> None:
    active = Active(window_s=30.0)
    active.saw(["a", "b"], now=100.0)
    active.saw(["a"], now=120.0)
    assert list(active.tenants(125.0)) == ["b", "a"]
    assert list(active.tenants(131.0)) == ["a"]
    assert list(active.tenants(151.0)) == []
