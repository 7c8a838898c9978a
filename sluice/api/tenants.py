"""Tenant routes: tenants, their keys and quotas (the admin key), and the audit log (a
tenant's own entries; the admin key: everyone's)."""

from __future__ import annotations

from ..contract import (
    AuditPage,
    AuditQuery,
    KeyList,
    NewKey,
    NewTenant,
    TenantCreate,
    TenantList,
    TenantQuota,
)
from ..engine.audit import ADMIN
from ..engine.tenants import key_id
from .route import Access, Call, Route

QUOTA_BYTES = 16 * 1024


def _small(_settings: object) -> int:
    return QUOTA_BYTES


async def create_tenant(call: Call) -> NewTenant:
    body: TenantCreate = call.body
    tenant = await call.node.tenants.create(body.name)
    key = await call.node.tenants.create_key(tenant.id)
    await call.node.audit.record(ADMIN, tenant.id, "tenant.create", detail=body.name)
    return NewTenant(tenant.id, tenant.name, key)


async def list_tenants(call: Call) -> TenantList:
    return TenantList(await call.node.tenants.all())


async def create_key(call: Call) -> NewKey:
    tenant = await call.node.tenants.get(call.path["tenant_id"])
    key = await call.node.tenants.create_key(tenant.id)
    await call.node.audit.record(ADMIN, tenant.id, "key.create", detail=key_id(key))
    return NewKey(key_id(key), key)


async def list_keys(call: Call) -> KeyList:
    tenant = await call.node.tenants.get(call.path["tenant_id"])
    return KeyList(await call.node.tenants.keys(tenant.id))


async def revoke_key(call: Call) -> None:
    tenant_id, key = call.path["tenant_id"], call.path["key_id"]
    await call.node.tenants.revoke_key(tenant_id, key)
    await call.node.audit.record(ADMIN, tenant_id, "key.revoke", detail=key)


async def put_quota(call: Call) -> TenantQuota:
    tenant = await call.node.tenants.get(call.path["tenant_id"])
    saved = await call.node.quotas.set(tenant.id, call.body)
    await call.node.audit.record(ADMIN, tenant.id, "quota.put", selector=saved)
    return saved


async def get_quota(call: Call) -> TenantQuota:
    tenant = await call.node.tenants.get(call.path["tenant_id"])
    return await call.node.quotas.get(tenant.id) or TenantQuota()


async def list_audit(call: Call) -> AuditPage:
    query: AuditQuery = call.query
    # A tenant sees its own entries, whatever it asks for; the admin whichever it names.
    tenant_id = query.tenant_id if call.caller.kind == "admin" else call.tenant
    entries = await call.node.audit.list(tenant_id, query.before or "", query.limit,
                                         query.action)  # fmt: skip
    return AuditPage(entries, entries[-1].id if len(entries) == query.limit else None)


TENANT_ROUTES = [
    Route("POST", "/v1/tenants", "createTenant",
          "Create a tenant and its first API key (admin key)", create_tenant,
          {201: NewTenant}, access=Access.ADMIN, body=TenantCreate, body_bytes=_small,
          tags=("tenants",)),
    Route("GET", "/v1/tenants", "listTenants", "Every tenant (admin key)", list_tenants,
          {200: TenantList}, access=Access.ADMIN, tags=("tenants",)),
    Route("POST", "/v1/tenants/{tenant_id}/keys", "createKey",
          "A new API key for a tenant, shown once (admin key)", create_key, {201: NewKey},
          access=Access.ADMIN, tags=("tenants",)),
    Route("GET", "/v1/tenants/{tenant_id}/keys", "listKeys",
          "A tenant's API keys, without the keys (admin key)", list_keys, {200: KeyList},
          access=Access.ADMIN, tags=("tenants",)),
    Route("DELETE", "/v1/tenants/{tenant_id}/keys/{key_id}", "revokeKey",
          "Revoke an API key; it stops working at once (admin key)", revoke_key, {204: None},
          access=Access.ADMIN, tags=("tenants",)),
    Route("PUT", "/v1/tenants/{tenant_id}/quota", "putQuota",
          "Set a tenant's quotas: most waiting tasks, largest payload (admin key)",
          put_quota, {200: TenantQuota}, access=Access.ADMIN, body=TenantQuota,
          body_bytes=_small, tags=("tenants",)),
    Route("GET", "/v1/tenants/{tenant_id}/quota", "getQuota", "A tenant's quotas (admin key)",
          get_quota, {200: TenantQuota}, access=Access.ADMIN, tags=("tenants",)),
    Route("GET", "/v1/audit", "listAudit",
          "Administrative and bulk actions, newest first (a tenant's own; the admin key: all)",
          list_audit, {200: AuditPage}, access=Access.TENANT_OR_ADMIN, query=AuditQuery,
          tags=("ops",)),
]  # fmt: skip
