-- SQLite. Limited claims (store/limits.py): running counts and GCRA rate state, cluster-wide.

-- name: count_running
-- The running set is small (at most the worker slots): walk its partial index.
SELECT count(*) FROM tasks INDEXED BY tasks_leased
WHERE state = 'running' AND tenant_id = :tenant_id
  AND (:function IS NULL OR function = :function)  -- NULL: every function of the tenant
  AND id NOT IN (SELECT value FROM json_each(:settling));  -- finishes being written

-- name: count_pool_running
-- A shared pool function's own cap: its running tasks of every tenant on the pools.
SELECT count(*) FROM tasks INDEXED BY tasks_leased
WHERE state = 'running' AND function = :function AND lease_owner LIKE 'pool:%'
  AND id NOT IN (SELECT value FROM json_each(:settling));

-- name: get_rate_limit
SELECT tat FROM rate_limits WHERE key = :key;

-- name: set_rate_limit
INSERT INTO rate_limits (key, tat) VALUES (:key, :tat)
ON CONFLICT (key) DO UPDATE SET tat = excluded.tat;

-- name: rate_states
-- The GCRA state of some rate keys, to say whether a rate holds tasks now.
SELECT key, tat FROM rate_limits WHERE key IN (SELECT value FROM json_each(:keys));
