"""`GET /metrics`: Prometheus text exposition (DESIGN §8, OBSERVABILITY.md §2.3).

Values are read from the node when scraped (a collector, not counters updated on the
hot path). What is here so far: build info, and the adaptive concurrency of HTTP targets
and worker pools (AIMD limit, in flight, cuts). The `target` label is the function name
and `kind` is `http` or `pool`; tenants never appear (function names are summed across
tenants), since labels must stay few and tenants must not see each other. Reading it
takes the admin key: function names are every tenant's.
"""

from __future__ import annotations

import platform
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from litestar import Request, Response, get
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..engine.node import Node
from .routes import admin_only

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[Metric]:
        node = self._node
        info = GaugeMetricFamily(
            "sluice_build_info", "Build metadata", labels=["version", "store", "python"]
        )
        store = "postgres" if node.settings.is_postgres else "sqlite"
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


@get("/metrics", include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    node = await admin_only(request)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)
