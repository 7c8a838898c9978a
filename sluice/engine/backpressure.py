"""Backpressure to producers, wired (DESIGN §6; the policy is policy/backpressure.py).

Every submit is offered to the node's Sample and Hold; while the node is overloaded, a
heavy tenant's submit is refused with its probability: 429 `tenant_throttled` with
Retry-After and `"scope": "tenant"`, or, when even the quiet tenants together exceed
what the workers drain, 503 `overloaded` with `"scope": "global"`. The SDK and CLI wait
for Retry-After, with jitter, and send again.

Overloaded means the ready backlog would take more than `overload_s` (30 s) at the
measured drain rate (the age the oldest ready task reaches in a steady state), and
stays so until it drops below half of that. With no workers draining there is no
overload: holding work until workers come is what a queue is for. The drain rate is
what this node's workers finished over the last seconds; each node judges its own
producers against it, which assumes a load balancer spreads producers evenly
(ALGORITHMS.md §2.4).
"""

from __future__ import annotations

from ..errors import Overloaded, TenantThrottled
from ..policy.backpressure import Backpressure as Policy
from .partitions import Partitions
from .quotas import Quotas
from .runtime import Runtime

DRAIN_EWMA = 0.3  # weight of the last second in the drain rate
SATURATED_TICKS = 3  # seconds of backlog before its drain rate is trusted as capacity
# The count of ready tasks walks the whole ready index: about 0.3 µs a task on SQLite, so
# a backlog of a million would keep a reader busy a third of every second. It is made
# again only after COUNT_EVERY times as long as the last one took (at most 5 % of a
# reader's time), and at least every COUNT_STALE_S, so one slow count (a cold cache, a
# stalled loop) never freezes overload or placement for long; placement adds what it
# placed meanwhile (engine/partitions.py).
COUNT_EVERY = 20.0
COUNT_STALE_S = 5.0


class Backpressure:
    def __init__(self, rt: Runtime, quotas: Quotas, partitions: Partitions, policy: Policy) -> None:
        """`policy`: the refusal odds and the heavy hitters (partitions read those too)."""
        self._rt = rt
        self._quotas = quotas
        self._partitions = partitions
        settings = rt.settings
        self.policy = policy
        self.overload_s = settings.overload_s
        self.min_backlog = settings.overload_min_backlog
        self.finished = 0  # tasks this node finished since the last tick
        self.drain_rate = 0.0
        self.backlog = 0
        self.saturated = 0  # ticks in a row with a backlog
        self._last = rt.clock.monotonic()
        self._count_after = float("-inf")  # when the backlog may be counted again

    def admit(self, tenant_id: str, n: int) -> None:
        """Count a submit of n tasks; refuse it if the node is overloaded and the tenant
        is over its fair share."""
        policy = self.policy
        policy.offered(tenant_id, n)
        scope = policy.decide(tenant_id)
        if scope == "tenant":
            raise TenantThrottled(
                "the server is overloaded and this tenant submits more than its fair share; "
                "submit again after Retry-After",
                retry_after_s=policy.retry_after_s(tenant_id),
            )
        if scope == "global":
            raise Overloaded(
                "the server is overloaded; submit again after Retry-After",
                retry_after_s=policy.retry_after_s(tenant_id),
            )

    def drained(self, n: int) -> None:
        """n tasks ended or went back to wait: what the workers got through."""
        self.finished += n

    async def tick(self) -> None:
        """Once a second: the drain rate, the backlog, overload, the probabilities."""
        rt = self._rt
        mono = rt.clock.monotonic()
        elapsed, self._last = max(1e-3, mono - self._last), mono
        rate = self.finished / elapsed
        self.finished = 0
        if mono >= self._count_after:
            by_partition = await rt.store.ready_backlog()
            took = rt.clock.monotonic() - mono
            self._count_after = mono + min(COUNT_EVERY * took, COUNT_STALE_S)
            self._partitions.observe(by_partition)
            self.backlog = sum(by_partition.values())
        if self.backlog < self.min_backlog:
            self.saturated = 0
            self.drain_rate += DRAIN_EWMA * (rate - self.drain_rate)
        else:
            # With a backlog the workers are busy, so what they finish is the capacity;
            # the rate measured before (workers partly idle) would understate it and
            # refuse quiet tenants at the start of a flood.
            self.saturated += 1
            self.drain_rate = rate if self.saturated == 1 else max(rate, self.drain_rate)
        seconds = self.backlog / max(self.drain_rate, 1.0)
        if self.saturated < SATURATED_TICKS or self.drain_rate < 1.0:
            overloaded = False  # not measured under load yet, or no workers draining
        elif self.policy.overloaded:
            overloaded = seconds > self.overload_s / 2
        else:
            overloaded = seconds > self.overload_s
        weights = {t: q.weight for t, q in self._quotas.all().items() if q.weight != 1.0}
        self.policy.tick(rt.clock.now(), self.drain_rate, overloaded, weights)
        if self.saturated < SATURATED_TICKS:
            self.policy.forget_shares()  # so none is carried into the next overload
