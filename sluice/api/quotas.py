"""Tenant quotas (admin key): `/v1/tenants/{tenant_id}/quota`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, put

from ..engine.audit import ADMIN
from ..model import TenantQuota
from .routes import _body, _decode, _json, _tenant_exists, admin_only, decoder

_decoder = decoder(TenantQuota)


@put("/v1/tenants/{tenant_id:str}/quota", summary="Set a tenant's quotas (admin)",
     tags=["tenants"])  # fmt: skip
async def put_quota(request: Request[Any, Any, Any]) -> Response[TenantQuota]:
    node = await admin_only(request)
    tenant_id = request.path_params["tenant_id"]
    await _tenant_exists(node, tenant_id)
    quota = _decode(_decoder, await _body(request, 16 * 1024))
    saved = await node.quotas.set(tenant_id, quota)
    await node.audit.record(ADMIN, tenant_id, "quota.put", selector=saved)
    return _json(saved)  # type: ignore[return-value]


@get("/v1/tenants/{tenant_id:str}/quota", summary="A tenant's quotas (admin)", tags=["tenants"])
async def get_quota(request: Request[Any, Any, Any]) -> Response[TenantQuota]:
    node = await admin_only(request)
    tenant_id = request.path_params["tenant_id"]
    await _tenant_exists(node, tenant_id)
    return _json(await node.quotas.get(tenant_id) or TenantQuota())  # type: ignore[return-value]


QUOTA_ROUTES = [put_quota, get_quota]
