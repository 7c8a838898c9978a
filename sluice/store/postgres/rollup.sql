-- PostgreSQL. Counts for metrics and stats: per-minute rollups and the backlog snapshot.

-- name: add_rollup
-- Additive: every node adds its own deltas to the same minute. One array per column.
INSERT INTO rollup AS r (tenant_id, function, minute, submitted, started, succeeded, failed,
                         dead, cancelled, expired, waits, wait_s, runs, run_s)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::bigint[], $5::bigint[],
                     $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],
                     $11::bigint[], $12::float8[], $13::bigint[], $14::float8[])
ON CONFLICT (tenant_id, function, minute) DO UPDATE SET
    submitted = r.submitted + excluded.submitted, started = r.started + excluded.started,
    succeeded = r.succeeded + excluded.succeeded, failed = r.failed + excluded.failed,
    dead = r.dead + excluded.dead, cancelled = r.cancelled + excluded.cancelled,
    expired = r.expired + excluded.expired, waits = r.waits + excluded.waits,
    wait_s = r.wait_s + excluded.wait_s, runs = r.runs + excluded.runs,
    run_s = r.run_s + excluded.run_s;

-- name: list_rollup
-- $1 tenant_id, $2 since
SELECT tenant_id, function, minute, submitted, started, succeeded, failed, dead, cancelled,
       expired, waits, wait_s, runs, run_s
FROM rollup WHERE tenant_id = $1 AND minute >= $2 ORDER BY minute, function;

-- name: list_all_rollup
-- $1 since
SELECT tenant_id, function, minute, submitted, started, succeeded, failed, dead, cancelled,
       expired, waits, wait_s, runs, run_s
FROM rollup WHERE minute >= $1 ORDER BY minute, tenant_id, function;

-- name: purge_rollup
-- $1 before; returns how many rows went.
WITH gone AS (DELETE FROM rollup WHERE minute < $1 RETURNING 1)
SELECT count(*) FROM gone;

-- name: count_backlog
-- One grouped count per state, each through its partial index.
SELECT tenant_id, function, 'ready', count(*), min(COALESCE(ready_at, run_at))
FROM tasks WHERE state = 'ready' GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'scheduled', count(*), NULL
FROM tasks WHERE state = 'scheduled' GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'paused', count(*), NULL
FROM tasks WHERE state = 'paused' GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'running', count(*), NULL
FROM tasks WHERE state = 'running' GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'dead', count(*), NULL
FROM tasks WHERE state = 'dead' GROUP BY tenant_id, function;

-- name: clear_backlog
DELETE FROM backlog;

-- name: put_backlog
-- One array per column; $6 taken_at.
INSERT INTO backlog (tenant_id, function, state, tasks, oldest, taken_at)
SELECT t, f, s, n, o, $6 FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                                     $5::float8[]) AS u(t, f, s, n, o);

-- name: list_backlog
-- $1 tenant_id
SELECT tenant_id, function, state, tasks, oldest, taken_at FROM backlog
WHERE tenant_id = $1 ORDER BY function, state;

-- name: list_all_backlog
SELECT tenant_id, function, state, tasks, oldest, taken_at FROM backlog
ORDER BY tenant_id, function, state;

-- name: backlog_taken
SELECT max(taken_at) FROM backlog;

-- name: count_load
-- The scaling signal of a tenant's functions ($2): ready and paused tasks (each counted
-- up to $4 through its partial index), running ones, and scheduled ones due by $3.
SELECT tenant_id, function, 'ready', count(*), min(since) FROM (
    SELECT tenant_id, function, COALESCE(ready_at, run_at) AS since FROM tasks
    WHERE state = 'ready' AND tenant_id = $1 AND function = ANY($2::text[]) LIMIT $4
) AS r GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'paused', count(*), NULL FROM (
    SELECT tenant_id, function FROM tasks
    WHERE state = 'paused' AND tenant_id = $1 AND function = ANY($2::text[]) LIMIT $4
) AS p GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'running', count(*), NULL FROM tasks
WHERE state = 'running' AND lease_until IS NOT NULL AND tenant_id = $1
  AND function = ANY($2::text[])
GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'due', count(*), NULL FROM (
    SELECT tenant_id, function FROM tasks
    WHERE state = 'scheduled' AND run_at <= $3 AND tenant_id = $1
      AND function = ANY($2::text[]) LIMIT $4
) AS d GROUP BY tenant_id, function;

-- name: count_pool_load
-- The same for a shared pool: every tenant's tasks of its functions, but for functions a
-- tenant registered itself (its own workers' alone: the shared claims leave them too),
-- the running ones those leased to pool workers.
SELECT tenant_id, function, 'ready', count(*), min(since) FROM (
    SELECT tenant_id, function, COALESCE(ready_at, run_at) AS since FROM tasks
    WHERE state = 'ready' AND function = ANY($1::text[])
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function: not the pool's
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
    LIMIT $3
) AS r GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'paused', count(*), NULL FROM (
    SELECT tenant_id, function FROM tasks
    WHERE state = 'paused' AND function = ANY($1::text[])
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function: not the pool's
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
    LIMIT $3
) AS p GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'running', count(*), NULL FROM tasks
WHERE state = 'running' AND lease_until IS NOT NULL AND function = ANY($1::text[])
  AND lease_owner LIKE 'pool:%'
GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'due', count(*), NULL FROM (
    SELECT tenant_id, function FROM tasks
    WHERE state = 'scheduled' AND run_at <= $2 AND function = ANY($1::text[])
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function: not the pool's
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
    LIMIT $3
) AS d GROUP BY tenant_id, function;
