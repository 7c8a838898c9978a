-- SQLite. Functions: a tenant's task types, each with the code's config and the
-- operator's overrides (store/functions.py makes the effective config on read).

-- name: upsert_function
-- The code's config (a worker's hello): the operator's overrides are left as they are.
INSERT INTO functions (tenant_id, name, config, updated_at, code_at)
VALUES (:tenant_id, :name, :config, :now, :now)
ON CONFLICT (tenant_id, name) DO UPDATE SET config = excluded.config,
    updated_at = excluded.updated_at, code_at = excluded.code_at;

-- name: set_function_overrides
-- The operator's settings: a function no code registered yet starts from the defaults.
INSERT INTO functions (tenant_id, name, config, updated_at, overrides)
VALUES (:tenant_id, :name, :config, :now, :overrides)
ON CONFLICT (tenant_id, name) DO UPDATE SET overrides = excluded.overrides,
    updated_at = excluded.updated_at;

-- name: list_functions
SELECT name, config, overrides, code_at FROM functions WHERE tenant_id = :tenant_id ORDER BY name;
