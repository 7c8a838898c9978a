"""Producer backpressure (policy/backpressure.py), with seeded randomness: Sample and Hold
finds heavy tenants in bounded memory, water-filling splits the admission capacity, and
in a closed loop heavy tenants are held to their fair share while light ones pass."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sluice.policy.backpressure import (
    OVERSAMPLING,
    THETA,
    Backpressure,
    SampleAndHold,
    refusal_probabilities,
    water_fill,
)


def zipf_stream(rng: random.Random, tenants: int, n: int, s: float = 1.1) -> list[str]:
    weights = [1 / (k**s) for k in range(1, tenants + 1)]
    return [f"t{k}" for k in rng.choices(range(tenants), weights=weights, k=n)]


def test_sample_and_hold_finds_every_heavy_tenant_in_bounded_memory() -> None:
    rng = random.Random(7)
    stream = zipf_stream(rng, 10_000, 200_000)
    threshold = THETA * len(stream)
    detector = SampleAndHold(threshold, random.Random(11))
    for tenant in stream:
        detector.offer(tenant)
    true = Counter(stream)
    heavy = {t for t, c in true.items() if c >= threshold}
    assert heavy and heavy <= set(detector.held)
    assert len(detector.held) <= 1.5 * OVERSAMPLING / THETA
    for tenant in heavy:  # exact once held; unbiased with the 1/p correction
        assert detector.estimate(tenant) == pytest.approx(true[tenant], rel=0.15)


def test_water_filling_golden_vectors() -> None:
    assert water_fill({"a": 10, "b": 50, "c": 100}, 100) == 45
    assert water_fill({"a": 10, "b": 20}, 100) == float("inf")
    p, everyone = refusal_probabilities({"a": 10, "b": 50, "c": 100}, {}, 0, 100)
    assert p == pytest.approx({"a": 0.0, "b": 0.10, "c": 0.55})
    assert everyone == 0
    # weights: b at 2 gets twice the share per unit
    p, _ = refusal_probabilities({"b": 100, "c": 100}, {"b": 2.0}, 0, 90)
    assert p == pytest.approx({"b": 0.1, "c": 0.55})  # b keeps 90, c 45: 2 to 1
    # small tenants alone over capacity: a global refusal
    p, everyone = refusal_probabilities({"a": 50}, {}, 200, 100)
    assert everyone == pytest.approx(1 - 100 / 250)
    # nothing offered, nothing drained (an idle server ticking): nothing refused
    assert refusal_probabilities({}, {}, 0.0, 0.0) == ({}, 0.0)
    assert refusal_probabilities({"a": 0.0}, {}, 0.0, 0.0) == ({"a": 0.0}, 0.0)


def test_closed_loop_holds_heavy_tenants_to_their_share_and_spares_light_ones() -> None:
    rng = random.Random(3)
    bp = Backpressure(now=0.0, rng=rng)
    offers = {"a": 1000.0, "b": 300.0, **{f"small{i}": 1.0 for i in range(100)}}
    accepted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    now = 0.0
    for interval in range(100):
        # one interval of batch submits of 10 tasks, interleaved
        calls = [t for t, rate in offers.items() for _ in range(int(rate * 10 / 10))]
        rng.shuffle(calls)
        for tenant in calls:
            bp.offered(tenant, 10)
            if bp.decide(tenant) is None:
                if interval >= 20:
                    accepted[tenant] += 10
            elif interval >= 20:
                refused[tenant] += 10
        now += 10.0
        bp.tick(now, drain_rate=600.0, overloaded=True, weights={})
    seconds = 80 * 10.0
    # capacity 540, small tenants 100 -> 440 for a and b: 220 each
    assert accepted["a"] / seconds == pytest.approx(220, rel=0.05)
    assert accepted["b"] / seconds == pytest.approx(220, rel=0.05)
    assert sum(refused[t] for t in offers if t.startswith("small")) == 0
    assert len(bp) <= 2 * OVERSAMPLING / THETA  # memory bounded


def test_nothing_is_refused_without_overload_and_retry_after_is_a_whole_second() -> None:
    bp = Backpressure(now=0.0, rng=random.Random(1))
    for _ in range(5000):
        bp.offered("a", 1)
    bp.tick(10.0, drain_rate=10.0, overloaded=False, weights={})
    p = bp.refuse["a"]
    assert p > 0.4  # known heavy (smoothed towards 0.998)...
    assert all(bp.decide("a") is None for _ in range(100))  # ...but not refused
    bp.tick(10.5, drain_rate=10.0, overloaded=True, weights={})
    assert sum(bp.decide("a") == "tenant" for _ in range(1000)) == pytest.approx(1000 * p, rel=0.1)
    after = bp.retry_after_s("a")
    assert isinstance(after, int) and 1 <= after <= 90
