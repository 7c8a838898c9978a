-- PostgreSQL. Functions: a tenant's task types, each with its config.

-- name: upsert_function
-- $1 tenant_id, $2 names[], $3 configs[], $4 now
INSERT INTO functions (tenant_id, name, config, updated_at)
SELECT $1, name, config, $4 FROM unnest($2::text[], $3::bytea[]) AS f(name, config)
ON CONFLICT (tenant_id, name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at;

-- name: list_functions
SELECT name, config FROM functions WHERE tenant_id = $1 ORDER BY name;
