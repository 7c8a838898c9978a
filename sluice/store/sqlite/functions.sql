-- SQLite. Functions: a tenant's task types, each with its config.

-- name: upsert_function
INSERT INTO functions (tenant_id, name, config, updated_at) VALUES (:tenant_id, :name, :config, :now)
ON CONFLICT (tenant_id, name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at;

-- name: list_functions
SELECT name, config FROM functions WHERE tenant_id = :tenant_id ORDER BY name;
