"""Producer backpressure (DESIGN §6 "Backpressure to producers", ALGORITHMS.md §2).

Heavy hitters are found with Sample and Hold (Estan and Varghese, SIGCOMM 2002): each
submitted task is sampled with probability p = O / T; a tenant sampled once is held and
counted exactly from then on. A tenant with T tasks in an interval is missed with
probability about e^-O, and the number of held tenants stays near O / theta however
many tenants there are (theta = T / the interval's total), so memory does not grow with
the number of tenants.

Only while the system is overloaded (the caller decides, from the backlog against the
drain rate), held tenants are refused with probability `max(0, 1 - alpha * w / r)`,
where r is the tenant's offered rate and alpha the max-min fair share of the admission
capacity (90 % of the drain rate, less what the small tenants send) found by
water-filling (Core-Stateless Fair Queueing, Stoica et al. 1998). Quiet tenants are
never refused by it. When the small tenants alone exceed the capacity, the overload is
global: everyone is refused with probability 1 - capacity / total (503).

Pure and deterministic: time comes in as arguments, randomness from an injected
`random.Random`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

INTERVAL_S = 10.0
THETA = 0.01  # a heavy hitter has at least 1 % of an interval's submits
OVERSAMPLING = 20.0
EARLY_REMOVAL = 0.2  # held entries below 0.2 T are dropped at an interval's end
MIN_THRESHOLD = 100.0  # T never below this many tasks an interval
ADMISSION = 0.9  # of the drain rate: the backlog still drains at 10 % or more
SMOOTHING = 0.5


class SampleAndHold:
    def __init__(
        self,
        threshold: float,
        rng: random.Random,
        oversampling: float = OVERSAMPLING,
        early_removal: float = EARLY_REMOVAL,
    ) -> None:
        self.rng = rng
        self.oversampling = oversampling
        self.early_removal = early_removal
        self.held: dict[str, float] = {}
        self._missed: dict[str, float] = {}  # expected units before each entry was made
        self.total = 0.0
        self.threshold = threshold
        self.p = min(1.0, oversampling / threshold)

    def offer(self, tenant: str, units: float = 1.0) -> None:
        """Count `units` tasks offered by a tenant (accepted or not)."""
        self.total += units
        if tenant in self.held:
            self.held[tenant] += units
            return
        q = 1.0 - (1.0 - self.p) ** units  # a batch of `units` is sampled as one arrival
        if self.rng.random() < q:
            self.held[tenant] = units
            # Unbiased: the batches before it went unseen, (1 - q) / q of them on average
            # (for single tasks this is the paper's (1 - p) / p).
            self._missed[tenant] = (1.0 - q) / q * units

    def estimate(self, tenant: str) -> float:
        """Unbiased size: the exact count since it was held, plus what sampling missed."""
        count = self.held.get(tenant)
        return 0.0 if count is None else count + self._missed.get(tenant, 0.0)

    def end_interval(self, next_threshold: float | None = None) -> dict[str, float]:
        """The estimates of the interval that ends; entries carry over when heavy enough
        (preserved, counting again from zero), the rest are dropped."""
        out = {t: self.estimate(t) for t in self.held}
        keep = self.early_removal * self.threshold
        self.held = {t: 0.0 for t, est in out.items() if est >= keep}
        self._missed = {}  # preserved entries count from the start of the next interval
        self.total = 0.0
        if next_threshold is not None:
            self.threshold = max(MIN_THRESHOLD, next_threshold)
            self.p = min(1.0, self.oversampling / self.threshold)
        return out


def water_fill(demands: Mapping[str, float], capacity: float) -> float:
    """The max-min fair share per unit weight of `capacity` among `demands` (each a rate
    per unit weight): everyone below it gets what they ask; inf if all fit."""
    remaining, items = capacity, sorted(demands.values())
    for i, demand in enumerate(items):
        share = remaining / (len(items) - i)
        if demand <= share:
            remaining -= demand
        else:
            return max(0.0, share)
    return math.inf


def refusal_probabilities(
    rates: Mapping[str, float],
    weights: Mapping[str, float],
    small_rate: float,
    capacity: float,
) -> tuple[dict[str, float], float]:
    """(per held tenant, the probability to refuse a submit; the global one). `rates`
    are the held tenants' offered rates, `small_rate` everyone else's together."""
    total = small_rate + sum(rates.values())
    if total <= 0:
        return {t: 0.0 for t in rates}, 0.0  # nothing offered: nothing to refuse
    room = capacity - small_rate
    if room <= 0:
        refuse = max(0.0, 1.0 - max(0.0, capacity) / total)
        return {t: refuse for t in rates}, refuse
    per_weight = {t: r / weights.get(t, 1.0) for t, r in rates.items()}
    alpha = water_fill(per_weight, room)
    out = {}
    for tenant, rate in rates.items():
        fair = alpha * weights.get(tenant, 1.0)
        out[tenant] = 0.0 if rate <= 0 or fair >= rate else 1.0 - fair / rate
    return out, 0.0


class Backpressure:
    """Per node: offered load per tenant, refusal probabilities per interval."""

    def __init__(self, now: float, rng: random.Random, interval_s: float = INTERVAL_S) -> None:
        self.rng = rng
        self.interval_s = interval_s
        self.started = now
        self.detector = SampleAndHold(MIN_THRESHOLD, rng)
        self.refuse: dict[str, float] = {}
        self.refuse_all = 0.0
        self.overloaded = False

    def offered(self, tenant: str, n: int) -> None:
        self.detector.offer(tenant, float(n))

    def decide(self, tenant: str) -> str | None:
        """None to accept; "tenant" or "global" to refuse (only while overloaded)."""
        if not self.overloaded:
            return None
        if self.refuse_all and self.rng.random() < self.refuse_all:
            return "global"
        p = self.refuse.get(tenant, 0.0)
        if p and self.rng.random() < p:
            return "tenant"
        return None

    def retry_after_s(self, tenant: str) -> int:
        """clamp(ceil(p * interval), 1, 60), with jitter so refused clients spread out."""
        p = max(self.refuse.get(tenant, 0.0), self.refuse_all)
        base = min(60, max(1, math.ceil(p * self.interval_s)))
        return base + math.floor(self.rng.uniform(0, 0.5 * base))

    def tick(
        self, now: float, drain_rate: float, overloaded: bool, weights: Mapping[str, float]
    ) -> bool:
        """Close the interval if its time has come: new probabilities from what was
        offered and the measured drain rate. True if it closed."""
        self.overloaded = overloaded
        elapsed = now - self.started
        if elapsed < self.interval_s:
            return False
        total = self.detector.total
        estimates = self.detector.end_interval(next_threshold=THETA * total)
        self.started = now
        rates = {t: est / elapsed for t, est in estimates.items()}
        small = max(0.0, total / elapsed - sum(rates.values()))
        fresh, everyone = refusal_probabilities(rates, weights, small, ADMISSION * drain_rate)
        # Smoothed, so one noisy interval does not swing admission; a tenant that went
        # quiet (not held any more) is released at once.
        self.refuse = {
            t: SMOOTHING * p + (1 - SMOOTHING) * self.refuse.get(t, 0.0) for t, p in fresh.items()
        }
        self.refuse = {t: p for t, p in self.refuse.items() if p > 0.001}
        self.refuse_all = SMOOTHING * everyone + (1 - SMOOTHING) * self.refuse_all
        if self.refuse_all < 0.001:
            self.refuse_all = 0.0
        return True

    def forget_shares(self) -> None:
        """Drop the refusal probabilities (the heavy hitters stay known): they were
        worked out from a drain rate that did not measure the capacity."""
        self.refuse = {}
        self.refuse_all = 0.0

    def __len__(self) -> int:
        return len(self.detector.held) + len(self.refuse)
