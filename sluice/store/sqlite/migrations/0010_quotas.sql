-- Per-tenant quotas (JSON TenantQuota), set by an admin.
CREATE TABLE quotas (
    tenant_id TEXT PRIMARY KEY,
    config TEXT NOT NULL
);
