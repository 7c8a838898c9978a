"""The engine's counts on `/metrics` (docs/observability.md lists every metric).

Two sources, read when scraped and never counted per scrape:

- this node's meters (engine/meters.py): counters and histograms of what this node
  did, and its workers and slots. Prometheus sums them across nodes.
- the cluster's backlog snapshot (engine/snapshot.py), the same on every node: tasks
  waiting by state per function and per tenant, running, dead letters, held by each
  limit, the oldest ready task. Aggregate these with max() across nodes, not sum().

Labels stay bounded: function names (summed over tenants), small enums, and `tenant`
only on the submit counter and the per-tenant waiting gauge, for the top tenants
(TOP_TENANTS) with the rest as `_other`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..engine.blockers import HELD
from ..engine.meters import OTHER, TOP_TENANTS
from ..engine.node import Node
from ..engine.registry import TARGET_PREFIX
from ..model import SHARED
from .scaling import SHARED_POOL

WAITING = ("ready", "scheduled", "paused")
UNKNOWN_LABEL = "_unknown"  # the function of ends the store reported without it


class MetersCollector(Collector):
    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield from self._histograms()
        yield from self._workers()
        yield from self._backlog()

    def _counters(self) -> Iterator[Metric]:
        m = self._node.meters
        submitted = CounterMetricFamily(
            "sluice_tasks_submitted", "Tasks submitted to this node, by result",
            labels=["tenant", "outcome"],
        )  # fmt: skip
        for (tenant, outcome), n in sorted(m.submitted.items()):
            submitted.add_metric([tenant, outcome], n)
        started = CounterMetricFamily(
            "sluice_tasks_started", "Tasks dispatched (every attempt)", labels=["function"]
        )
        for function, n in sorted(m.started.items()):
            started.add_metric([function], n)
        finished = CounterMetricFamily(
            "sluice_tasks_finished", "Attempts and tasks that ended, by outcome "
            "(retried: an attempt failed and the task waits again)",
            labels=["function", "outcome"],
        )  # fmt: skip
        for (function, outcome), n in sorted(m.finished.items()):
            finished.add_metric([function or UNKNOWN_LABEL, outcome], n)
        refusals = CounterMetricFamily(
            "sluice_backpressure_refusals", "Submit requests refused by backpressure",
            labels=["scope"],
        )  # fmt: skip
        for scope in ("tenant", "global"):
            refusals.add_metric([scope], m.refusals[scope])
        lost = CounterMetricFamily(
            "sluice_lease_expirations", "Running tasks whose lease ran out (worker lost)"
        )
        lost.add_metric([], m.leases_lost)
        yield from (submitted, started, finished, refusals, lost)

    def _histograms(self) -> Iterator[Metric]:
        m = self._node.meters
        for name, doc, histogram in (
            ("sluice_task_wait_seconds", "Submit to start of first attempts", m.wait),
            ("sluice_task_run_seconds", "Run time of attempts (worker start to end)", m.run),
            ("sluice_dispatch_round_seconds", "Dispatch rounds that claimed", m.rounds),
        ):
            family = HistogramMetricFamily(name, doc)
            family.add_metric([], histogram.cumulative(), sum_value=histogram.sum)
            yield family
        store = HistogramMetricFamily(
            "sluice_store_operation_seconds", "Store commits as the engine waits for them",
            labels=["op"],
        )  # fmt: skip
        for op, histogram in sorted(m.store_ops.items()):
            store.add_metric([op], histogram.cumulative(), sum_value=histogram.sum)
        yield store

    def _workers(self) -> Iterator[Metric]:
        conns = [
            c for c in self._node.registry
            if not c.closed and not c.worker_id.startswith(TARGET_PREFIX)
        ]  # fmt: skip
        # By pool, as /v1/scaling names them: `shared`, or the tenant whose workers they
        # are. The TOP_TENANTS pools with the most workers are named, the rest `_other`.
        by_pool: defaultdict[str, list[Any]] = defaultdict(list)
        for c in conns:
            by_pool[SHARED_POOL if c.tenant_id == SHARED else c.tenant_id].append(c)
        ranked = sorted(by_pool, key=lambda pool: (-len(by_pool[pool]), pool))
        labelled: defaultdict[str, list[Any]] = defaultdict(list)
        for rank, pool in enumerate(ranked):
            labelled[pool if rank < TOP_TENANTS else OTHER] += by_pool[pool]
        workers = GaugeMetricFamily(
            "sluice_workers", "Workers connected to this node, by pool (`shared`, or the "
            "tenant's id): ready, or draining (asked to stop, they take nothing new and "
            "finish what runs)", labels=["pool", "state"],
        )  # fmt: skip
        slots = GaugeMetricFamily(
            "sluice_worker_slots", "Slots of the workers connected to this node, by pool",
            labels=["pool", "state"],
        )  # fmt: skip
        for pool, members in sorted(labelled.items()):
            draining = sum(1 for c in members if c.draining)
            workers.add_metric([pool, "ready"], len(members) - draining)
            workers.add_metric([pool, "draining"], draining)
            slots.add_metric([pool, "busy"], sum(len(c.inflight) for c in members))
            # Free: not running a task. A dispatch round's reservation is not use: counting
            # it would show a connected, idle worker as full while a claim finds nothing.
            slots.add_metric(
                [pool, "free"], sum(max(0, c.slots - len(c.inflight)) for c in members)
            )
        yield from (workers, slots)

    def _backlog(self) -> Iterator[Metric]:
        snapshot = self._node.snapshot
        by_function: defaultdict[tuple[str, str], int] = defaultdict(int)
        by_tenant: defaultdict[tuple[str, str], int] = defaultdict(int)
        held: defaultdict[tuple[str, str], int] = defaultdict(int)
        oldest: dict[str, float] = {}
        for r in snapshot.rows:
            if r.state.startswith(HELD):
                held[(r.function, r.state.removeprefix(HELD))] += r.tasks
                continue
            by_function[(r.function, r.state)] += r.tasks
            if r.state in WAITING:
                by_tenant[(r.tenant_id, r.state)] += r.tasks
            if r.state == "paused":
                held[(r.function, "paused")] += r.tasks
            if r.oldest is not None:
                oldest[r.function] = min(r.oldest, oldest.get(r.function, r.oldest))
        waiting = GaugeMetricFamily(
            "sluice_tasks_waiting", "Tasks waiting, by state (cluster-wide: the snapshot)",
            labels=["function", "state"],
        )  # fmt: skip
        running = GaugeMetricFamily("sluice_tasks_running", "Tasks running (cluster-wide)",
                                    labels=["function"])  # fmt: skip
        dead = GaugeMetricFamily("sluice_dead_letter_tasks", "Dead tasks kept (cluster-wide)",
                                 labels=["function"])  # fmt: skip
        for (function, state), n in sorted(by_function.items()):
            if state in WAITING:
                waiting.add_metric([function, state], n)
            elif state == "running":
                running.add_metric([function], n)
            elif state == "dead":
                dead.add_metric([function], n)
        yield from (waiting, running, dead)
        yield _tenants(by_tenant)
        held_family = GaugeMetricFamily(
            "sluice_tasks_held", "Waiting tasks a pause or a limit holds back (cluster-wide)",
            labels=["function", "reason"],
        )  # fmt: skip
        for (function, reason), n in sorted(held.items()):
            held_family.add_metric([function, reason], n)
        yield held_family
        now = self._node.clock.now()
        age = GaugeMetricFamily(
            "sluice_oldest_ready_age_seconds", "Age of the oldest ready task",
            labels=["function"],
        )  # fmt: skip
        for function, at in sorted(oldest.items()):
            age.add_metric([function], max(0.0, now - at))
        yield age
        taken = GaugeMetricFamily(
            "sluice_snapshot_age_seconds", "Age of the backlog snapshot the gauges come from"
        )
        if snapshot.taken_at is not None:
            taken.add_metric([], max(0.0, now - snapshot.taken_at))
        yield taken


def _tenants(by_tenant: dict[tuple[str, str], int]) -> GaugeMetricFamily:
    """Waiting tasks per tenant: the TOP_TENANTS with most waiting, the rest `_other`."""
    totals: Counter[str] = Counter()
    for (tenant, _state), n in by_tenant.items():
        totals[tenant] += n
    top = {t for t, _ in totals.most_common(TOP_TENANTS)}
    out: defaultdict[tuple[str, str], int] = defaultdict(int)
    for (tenant, state), n in by_tenant.items():
        out[(tenant if tenant in top else OTHER, state)] += n
    family = GaugeMetricFamily(
        "sluice_tenant_tasks_waiting", "Tasks waiting per tenant, top tenants and _other",
        labels=["tenant", "state"],
    )  # fmt: skip
    for (tenant, state), n in sorted(out.items()):
        family.add_metric([tenant, state], n)
    return family
