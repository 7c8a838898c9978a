"""`GET /v1/scaling/{pool}`: a worker pool's load, for autoscalers (engine/scaling.py;
docs/kubernetes.md). The answer is KEDA metrics-api's JSON: `valueLocation: load`.

Pools: `default` is the caller's own workers (a tenant key: the tenant's; the pool key:
the shared pools'); the admin key names `shared` or a tenant id. A pool's functions are
every function its workers run, or those named in `functions`.
"""

from __future__ import annotations

from ..contract import Scaling, ScalingQuery
from ..errors import NotFound
from ..model import SHARED
from .route import Access, Call, Route

SHARED_POOL = "shared"
DEFAULT_POOL = "default"


async def scaling(call: Call) -> Scaling:
    pool = call.path["pool"]
    owner = await _owner(call, pool)
    query: ScalingQuery = call.query
    functions = list(query.functions)
    return await call.node.scaling.of(owner, pool, functions)


async def _owner(call: Call, pool: str) -> str:
    """Whose workers the pool is: a tenant's, or SHARED."""
    caller = call.caller
    if caller.kind == "admin":
        if pool == SHARED_POOL:
            return SHARED
        if pool == DEFAULT_POOL:
            raise NotFound("the admin key names a pool: `shared`, or a tenant's id",
                           code="pool_not_found", field="pool")  # fmt: skip
        tenant = await call.node.tenants.get(pool)  # 404 tenant_not_found
        return tenant.id
    own = SHARED_POOL if caller.tenant_id == SHARED else caller.tenant_id
    if pool in (DEFAULT_POOL, own):
        return caller.tenant_id
    raise NotFound(f"no pool {pool!r} for this key: its pool is `default` (or {own!r})",
                   code="pool_not_found", field="pool")  # fmt: skip


SCALING_ROUTES = [
    Route("GET", "/v1/scaling/{pool}", "getScaling",
          "A worker pool's load for autoscalers (KEDA metrics-api: valueLocation `load`): "
          "dispatchable ready + running + due within 30 s, cluster-wide", scaling,
          {200: Scaling}, access=Access.WORKER, query=ScalingQuery, tags=("ops",),
          errors={404: "No such pool for this key (`pool_not_found`)"}),
]  # fmt: skip
