"""`GET /metrics`: Prometheus text exposition (DESIGN §8, OBSERVABILITY.md §2.3).

Values are read from the node when scraped (collectors; a registry per scrape, never the
global one, since many nodes may live in one process). Here: build info, and the adaptive
concurrency of HTTP targets and worker pools (AIMD limit, in flight, cuts); the engine's
counters, histograms and backlog gauges are api/meters.py's. The `target` label is the function name
and `kind` is `http` or `pool`; tenants never appear (function names are summed across
tenants), since labels must stay few and tenants must not see each other. Reading it
takes the admin key: function names are every tenant's.
"""

from __future__ import annotations

import platform
from collections import defaultdict
from collections.abc import Iterator

from litestar import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..engine.node import Node
from .meters import MetersCollector
from .route import Access, Call, Route

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        node = self._node
        info = GaugeMetricFamily(
            "sluice_build_info", "Build metadata", labels=["version", "store", "python"]
        )
        store = node.store.backend
        info.add_metric([__version__, store, platform.python_version()], 1)
        yield info
        limit: defaultdict[tuple[str, str], float] = defaultdict(float)
        inflight: defaultdict[tuple[str, str], float] = defaultdict(float)
        cuts: defaultdict[tuple[str, str], float] = defaultdict(float)
        for (_tenant, function), conn in node.targets.items():
            key = (function, "http")
            limit[key] += conn.aimd.limit
            inflight[key] += conn.aimd.inflight
            cuts[key] += conn.aimd.cuts
        for (_tenant, function), aimd in node.adaptive.limits.items():
            key = (function, "pool")
            limit[key] += aimd.limit
            inflight[key] += aimd.inflight
            cuts[key] += aimd.cuts
        for function, n in node.adaptive.retired_cuts.items():
            cuts[(function, "pool")] += n
        labels = ["target", "kind"]
        families: tuple[GaugeMetricFamily | CounterMetricFamily, ...] = (
            GaugeMetricFamily(
                "sluice_target_concurrency_limit",
                "Current AIMD limit on tasks in flight (summed over tenants)",
                labels=labels,
            ),
            GaugeMetricFamily(
                "sluice_target_inflight", "Tasks in flight under the AIMD limit", labels=labels
            ),
            CounterMetricFamily(
                "sluice_target_limit_decreases",
                "Multiplicative decreases of the AIMD limit (flow-control answers)",
                labels=labels,
            ),
        )
        for family, values in zip(families, (limit, inflight, cuts), strict=True):
            for (function, kind), value in sorted(values.items()):
                family.add_metric([function, kind], value)
            yield family


async def metrics(call: Call) -> Response[bytes]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(call.node))
    registry.register(MetersCollector(call.node))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)


METRICS_ROUTES = [
    Route("GET", "/metrics", "metrics",
          "Prometheus text exposition: tasks by state, counters, latencies, workers, "
          "limits (admin key; docs/observability.md lists them)", metrics, {200: "text/plain"},
          access=Access.ADMIN, tags=("ops",)),
]  # fmt: skip
