-- PostgreSQL. Tenants and their API keys.

-- name: create_tenant
INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3);

-- name: get_tenant_by_name
SELECT id, name, created_at FROM tenants WHERE name = $1;

-- name: get_tenant
SELECT id, name, created_at FROM tenants WHERE id = $1;

-- name: list_tenants
SELECT id, name, created_at FROM tenants ORDER BY name;

-- name: create_api_key
INSERT INTO api_keys (key_hash, tenant_id, prefix, created_at) VALUES ($1, $2, $3, $4);

-- name: find_api_key
SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL;

-- name: list_api_keys
SELECT substr(key_hash, 1, 16), prefix, created_at, revoked_at FROM api_keys
WHERE tenant_id = $1 ORDER BY created_at;

-- name: revoke_api_key
-- A key is named by the first 16 hex digits of its hash (its id); the key itself is unknown.
UPDATE api_keys SET revoked_at = $3
WHERE tenant_id = $1 AND substr(key_hash, 1, 16) = $2 AND revoked_at IS NULL
RETURNING key_hash;
