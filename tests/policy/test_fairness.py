"""Start-time fair queueing (policy/fairness.py), on its own: a simulated dispatcher takes
the smallest tag first, as the store's index scan does."""

from __future__ import annotations

import heapq
import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.policy.fairness import StartTags


def drain(tags: StartTags, queue: list[tuple[float, int, str]], n: int) -> list[str]:
    """Dispatch n tasks in tag order (ties by arrival), moving the virtual clock."""
    out = []
    for _ in range(n):
        tag, _seq, tenant = heapq.heappop(queue)
        tags.dispatched(tag)
        out.append(tenant)
    return out


_arrivals = itertools.count()


def submit(
    tags: StartTags, queue: list[tuple[float, int, str]], tenant: str, n: int, w: float = 1.0
) -> None:
    for tag in tags.tags(tenant, n, w):
        heapq.heappush(queue, (tag, next(_arrivals), tenant))


def test_a_late_tenant_is_interleaved_with_a_backlog_at_once() -> None:
    tags, queue = StartTags(), []
    submit(tags, queue, "a", 50_000)
    drain(tags, queue, 1_000)
    submit(tags, queue, "b", 100)
    order = drain(tags, queue, 200)
    # B's 100 tasks alternate with A's: all of them within the next 200 dispatches.
    assert order.count("b") == 100
    assert order[:2] in (["a", "b"], ["b", "a"])
    assert max(i for i, t in enumerate(order) if t == "b") <= 200


def test_weights_split_dispatches_in_proportion() -> None:
    tags, queue = StartTags(), []
    submit(tags, queue, "a", 30_000, w=3.0)
    submit(tags, queue, "b", 30_000, w=1.0)
    counts = Counter(drain(tags, queue, 20_000))
    assert counts["a"] / counts["b"] == pytest.approx(3.0, rel=0.01)


def test_idle_time_buys_no_burst() -> None:
    tags, queue = StartTags(), []
    submit(tags, queue, "a", 10_000)
    submit(tags, queue, "b", 10)
    drain(tags, queue, 5_000)  # B's ten ran long ago; it was idle since
    submit(tags, queue, "b", 1_000)
    order = drain(tags, queue, 100)
    # B starts from the clock, not from its old last tag: it shares, it does not jump.
    assert 45 <= order.count("b") <= 55


def test_prune_forgets_only_tenants_the_clock_passed() -> None:
    tags = StartTags()
    tags.tags("a", 100)
    tags.tags("b", 5)
    tags.dispatched(10.0)
    assert tags.prune() == 1
    assert len(tags) == 1
    assert tags.last("b") == 10.0  # forgotten: it starts from the clock, as before
    assert tags.last("a") == 100.0


def test_seed_continues_a_chain_from_the_store() -> None:
    tags = StartTags(vclock=5.0)
    tags.seed("a", 900.0)
    assert tags.tags("a", 1) == [901.0]
    tags.seed("a", 10.0)  # an older view never moves a chain back
    assert tags.tags("a", 1) == [902.0]


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        StartTags(cost=0)
    with pytest.raises(ValueError):
        StartTags().tags("a", 1, weight=0)


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.sampled_from([1.0, 2.0, 3.0, 5.0]), min_size=2, max_size=6),
    backlog=st.integers(min_value=200, max_value=2_000),
    early=st.integers(min_value=0, max_value=3),
)
def test_backlogged_tenants_share_by_weight(weights: list[float], backlog: int, early: int) -> None:
    """Whatever the weights and whoever queued first, while every tenant is backlogged
    each one's share of a window of dispatches is its weight's share, within one task
    per tenant (SFQ's bound)."""
    tags, queue = StartTags(), []
    tenants = [f"t{i}" for i in range(len(weights))]
    first = tenants[early % len(tenants)]
    submit(tags, queue, first, backlog * 10, weights[early % len(tenants)])
    drain(tags, queue, 50)  # the first tenant had the system to itself for a while
    for t, w in zip(tenants, weights, strict=True):
        if t != first:
            submit(tags, queue, t, backlog * 10, w)
    window = backlog
    counts = Counter(drain(tags, queue, window))
    total = sum(weights)
    for t, w in zip(tenants, weights, strict=True):
        assert abs(counts[t] - window * w / total) <= 2
