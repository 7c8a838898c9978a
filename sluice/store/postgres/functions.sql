-- PostgreSQL. Functions: a tenant's task types, each with the code's config and the
-- operator's overrides (store/functions.py makes the effective config on read).

-- name: upsert_function
-- The code's config (a worker's hello): the operator's overrides are left as they are.
-- $1 tenant_id, $2 names[], $3 configs[], $4 now
INSERT INTO functions (tenant_id, name, config, updated_at, code_at)
SELECT $1, name, config, $4, $4 FROM unnest($2::text[], $3::bytea[]) AS f(name, config)
ON CONFLICT (tenant_id, name) DO UPDATE SET config = excluded.config,
    updated_at = excluded.updated_at, code_at = excluded.code_at;

-- name: set_function_overrides
-- The operator's settings: a function no code registered yet starts from the defaults.
-- $1 tenant_id, $2 name, $3 default config, $4 now, $5 overrides
INSERT INTO functions (tenant_id, name, config, updated_at, overrides)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, name) DO UPDATE SET overrides = excluded.overrides,
    updated_at = excluded.updated_at;

-- name: list_functions
SELECT name, config, overrides, code_at FROM functions WHERE tenant_id = $1 ORDER BY name;
