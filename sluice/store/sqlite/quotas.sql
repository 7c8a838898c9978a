-- SQLite. Tenant quotas, and the queued count the hard quota caps.

-- name: put_quota
INSERT INTO quotas (tenant_id, config) VALUES (:tenant_id, :config)
ON CONFLICT (tenant_id) DO UPDATE SET config = excluded.config;

-- name: get_quota
SELECT config FROM quotas WHERE tenant_id = :tenant_id;

-- name: list_quotas
-- Every tenant's quotas: few rows (only tenants an admin gave quotas), read at start.
SELECT tenant_id, config FROM quotas;

-- name: count_queued
-- Waiting tasks of a tenant, each state through its partial index.
SELECT (SELECT count(*) FROM tasks WHERE tenant_id = :tenant_id AND state = 'ready')
     + (SELECT count(*) FROM tasks WHERE tenant_id = :tenant_id AND state = 'paused')
     + (SELECT count(*) FROM tasks INDEXED BY tasks_scheduled
        WHERE state = 'scheduled' AND tenant_id = :tenant_id);
