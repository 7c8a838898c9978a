"""Shuffle sharding (policy/sharding.py): deterministic, spread, minimal disruption, the
blast radius the math predicts, and hot-tenant isolation with hysteresis."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.policy.sharding import (
    COOL_FOR_S,
    HOT_FOR_S,
    HotTenants,
    blast_radius,
    choose,
    dedicated,
    owners,
    shards,
    simulate_stall,
    spread,
)


def test_each_tenant_gets_k_distinct_partitions_deterministically() -> None:
    first = shards("acme")
    assert first == shards("acme") and len(set(first)) == 2
    assert all(0 <= p < 32 for p in first)
    assert shards("acme", seed=b"other") != first or shards("beta", seed=b"other") != shards("beta")


def test_partitions_are_evenly_used() -> None:
    use = Counter(p for i in range(20_000) for p in shards(f"t{i}"))
    expected = 20_000 * 2 / 32
    assert all(abs(n - expected) < 0.1 * expected for n in use.values())


def test_adding_a_partition_moves_few_tenants() -> None:
    moved = sum(shards(f"t{i}", 32) != shards(f"t{i}", 33) for i in range(10_000))
    # Only tenants for whom the new partition scores in their top 2: about 2/33.
    assert moved / 10_000 == pytest.approx(2 / 33, rel=0.15)


def test_new_tasks_go_to_the_less_backlogged_partition() -> None:
    assert choose([3, 9], {3: 500, 9: 20}) == 9
    assert choose([3, 9], {}) == 3


def test_a_stalled_partition_hurts_only_its_tenants_as_the_math_predicts() -> None:
    table = blast_radius(32, 2)
    assert table["touching_one_failed"] == 2 / 32
    assert table["sharing_all_with_one_tenant"] == pytest.approx(1 / 496)
    counted = simulate_stall(20_000, 32, 2, stalled={5})
    assert counted["some_stalled"] == pytest.approx(2 / 32, rel=0.1)
    assert counted["all_stalled"] == 0  # every one of them still has its other partition
    two = simulate_stall(20_000, 32, 2, stalled={5, 17})
    assert two["all_stalled"] == pytest.approx(1 / math.comb(32, 2), rel=0.5)


def test_blast_radius_table(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints the table docs/flow-control.md shows (run with -s to see it)."""
    rows = []
    for partitions in (8, 16, 32, 64):
        for k in (1, 2, 3):
            r = blast_radius(partitions, k)
            rows.append(f"P={partitions:<3} k={k}: touch {r['touching_one_failed']:.2%}, "
                        f"share all k {r['sharing_all_with_one_tenant']:.4%}")  # fmt: skip
    print("\n".join(rows))
    assert "P=32  k=2: touch 6.25%, share all k 0.2016%" in capsys.readouterr().out


def test_hot_tenants_are_isolated_and_return_with_hysteresis() -> None:
    hot = HotTenants()
    assert hot.observe(0.0, {"a": {3: 5_000}, "b": {3: 50}}, {3: 6_000}) == set()
    assert hot.observe(HOT_FOR_S - 1, {"a": {3: 5_000}}, {3: 6_000}) == set()  # not long enough
    assert hot.observe(HOT_FOR_S, {"a": {3: 5_000}}, {3: 6_000}) == {"a"}
    assert hot.observe(HOT_FOR_S + 10, {"a": {3: 50}}, {3: 100}) == {"a"}  # cooling starts
    assert hot.observe(HOT_FOR_S + 20, {"a": {3: 500}}, {3: 600}) == {"a"}  # not cool: again
    assert hot.observe(HOT_FOR_S + 30, {"a": {3: 10}}, {3: 10}) == {"a"}
    assert hot.observe(HOT_FOR_S + 30 + COOL_FOR_S, {"a": {3: 10}}, {3: 10}) == set()
    # small share of a big partition: not hot, however large
    assert hot.observe(10_000.0, {"c": {1: 2_000}}, {1: 100_000}) == set()
    assert hot.observe(10_000.0 + HOT_FOR_S, {"c": {1: 2_000}}, {1: 100_000}) == set()


def test_partition_owners_agree_balance_and_move_little() -> None:
    nodes = ["node-a", "node-b", "node-c"]
    table = owners(nodes, 48)
    assert table == owners(list(reversed(nodes)), 48)  # every node computes the same map
    counts = Counter(table.values())
    assert set(counts) == set(nodes) and min(counts.values()) >= 8  # about 16 each
    # a node leaving moves only its own partitions; one joining takes about 1/N
    without_b = owners(["node-a", "node-c"], 48)
    assert {p for p in table if table[p] != without_b[p]} == {
        p for p, n in table.items() if n == "node-b"
    }
    with_d = owners([*nodes, "node-d"], 48)
    moved = [p for p in table if table[p] != with_d[p]]
    assert all(with_d[p] == "node-d" for p in moved) and 4 <= len(moved) <= 20
    assert owners([], 8) == {}


def test_a_hot_tenants_own_partition_is_past_the_shared_ones() -> None:
    placed = {dedicated(f"tenant-{i}", 32, 16) for i in range(200)}
    assert placed <= set(range(32, 48)) and len(placed) == 16  # all used, none shared
    assert dedicated("tenant-1", 32, 16) == dedicated("tenant-1", 32, 16)


@given(
    st.lists(st.integers(0, 63), min_size=1, max_size=4, unique=True),
    st.dictionaries(st.integers(0, 63), st.integers(0, 50), max_size=8),
    st.integers(1, 300),
)
def test_spread_counts_as_placing_one_task_at_a_time(
    candidates: list[int], backlog: dict[int, int], n: int
) -> None:
    one_by_one: Counter[int] = Counter()
    counted = dict(backlog)
    for _ in range(n):
        p = choose(candidates, counted)
        counted[p] = counted.get(p, 0) + 1
        one_by_one[p] += 1
    assert spread(candidates, backlog, n) == dict(one_by_one)
