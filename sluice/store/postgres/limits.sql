-- PostgreSQL. Limited claims (store/limits.py): running counts and GCRA rate state, cluster-wide.

-- name: lock_limit
-- PostgreSQL only: nodes claiming under the same limit key take turns (an advisory lock
-- until the transaction ends). SQLite has one writer, which already serialises claims.
SELECT pg_advisory_xact_lock(hashtextextended($1, 7364))

-- name: count_running
-- $2 NULL: every function of the tenant.
SELECT count(*) FROM tasks
WHERE state = 'running' AND lease_until IS NOT NULL AND tenant_id = $1
  AND ($2::text IS NULL OR function = $2)
  AND id <> ALL($3::text[]);  -- $3: tasks whose finishes are being written

-- name: count_pool_running
-- A shared pool function's own cap: its running tasks of every tenant on the pools.
SELECT count(*) FROM tasks
WHERE state = 'running' AND lease_until IS NOT NULL AND function = $1
  AND lease_owner LIKE 'pool:%'
  AND id <> ALL($2::text[]);

-- name: get_rate_limit
-- Serialises the limited claims of one key across nodes for the rest of the transaction.
SELECT tat FROM rate_limits WHERE key = $1 FOR UPDATE;

-- name: set_rate_limit
INSERT INTO rate_limits (key, tat) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET tat = excluded.tat;

-- name: rate_states
-- The GCRA state of some rate keys, to say whether a rate holds tasks now.
SELECT key, tat FROM rate_limits WHERE key = ANY($1::text[]);
