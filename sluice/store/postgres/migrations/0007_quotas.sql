-- Per-tenant quotas (JSON TenantQuota), set by an admin.
CREATE TABLE quotas (
    tenant_id text PRIMARY KEY,
    config bytea NOT NULL
);
