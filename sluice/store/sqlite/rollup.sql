-- SQLite. Counts for metrics and stats: per-minute rollups and the backlog snapshot.

-- name: add_rollup
-- Additive: every node adds its own deltas to the same minute.
INSERT INTO rollup (tenant_id, function, minute, submitted, started, succeeded, failed, dead,
                    cancelled, expired, waits, wait_s, runs, run_s)
VALUES (:tenant_id, :function, :minute, :submitted, :started, :succeeded, :failed, :dead,
        :cancelled, :expired, :waits, :wait_s, :runs, :run_s)
ON CONFLICT (tenant_id, function, minute) DO UPDATE SET
    submitted = submitted + excluded.submitted, started = started + excluded.started,
    succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed,
    dead = dead + excluded.dead, cancelled = cancelled + excluded.cancelled,
    expired = expired + excluded.expired, waits = waits + excluded.waits,
    wait_s = wait_s + excluded.wait_s, runs = runs + excluded.runs, run_s = run_s + excluded.run_s;

-- name: list_rollup
SELECT tenant_id, function, minute, submitted, started, succeeded, failed, dead, cancelled,
       expired, waits, wait_s, runs, run_s
FROM rollup WHERE tenant_id = :tenant_id AND minute >= :since ORDER BY minute, function;

-- name: list_all_rollup
SELECT tenant_id, function, minute, submitted, started, succeeded, failed, dead, cancelled,
       expired, waits, wait_s, runs, run_s
FROM rollup WHERE minute >= :since ORDER BY minute, tenant_id, function;

-- name: purge_rollup
DELETE FROM rollup WHERE minute < :before;

-- name: count_backlog
-- One grouped count per state, each through its partial index (dead through tasks_dead).
SELECT tenant_id, function, 'ready', count(*), min(COALESCE(ready_at, run_at))
FROM tasks WHERE state = 'ready' GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'scheduled', count(*), NULL
FROM tasks INDEXED BY tasks_scheduled WHERE state = 'scheduled' GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'paused', count(*), NULL
FROM tasks WHERE state = 'paused' GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'running', count(*), NULL
FROM tasks INDEXED BY tasks_leased WHERE state = 'running' GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'dead', count(*), NULL
FROM tasks INDEXED BY tasks_dead WHERE state = 'dead' GROUP BY tenant_id, function;

-- name: clear_backlog
DELETE FROM backlog;

-- name: put_backlog
INSERT INTO backlog (tenant_id, function, state, tasks, oldest, taken_at)
VALUES (:tenant_id, :function, :state, :tasks, :oldest, :taken_at);

-- name: list_backlog
SELECT tenant_id, function, state, tasks, oldest, taken_at FROM backlog
WHERE tenant_id = :tenant_id ORDER BY function, state;

-- name: list_all_backlog
SELECT tenant_id, function, state, tasks, oldest, taken_at FROM backlog
ORDER BY tenant_id, function, state;

-- name: backlog_taken
SELECT max(taken_at) FROM backlog;

-- name: count_load
-- The scaling signal of a tenant's functions: ready and paused tasks (each counted up to
-- :cap through its partial index), running ones, and scheduled ones due by :due_by.
SELECT tenant_id, function, 'ready', count(*), min(since) FROM (
    SELECT tenant_id, function, COALESCE(ready_at, run_at) AS since FROM tasks
    WHERE state = 'ready' AND tenant_id = :tenant_id
      AND function IN (SELECT value FROM json_each(:functions)) LIMIT :cap
) GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'paused', count(*), NULL FROM (
    SELECT tenant_id, function FROM tasks
    WHERE state = 'paused' AND tenant_id = :tenant_id
      AND function IN (SELECT value FROM json_each(:functions)) LIMIT :cap
) GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'running', count(*), NULL FROM tasks INDEXED BY tasks_leased
WHERE state = 'running' AND tenant_id = :tenant_id
  AND function IN (SELECT value FROM json_each(:functions))
GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'due', count(*), NULL FROM (
    SELECT tenant_id, function FROM tasks INDEXED BY tasks_scheduled
    WHERE state = 'scheduled' AND run_at <= :due_by AND tenant_id = :tenant_id
      AND function IN (SELECT value FROM json_each(:functions)) LIMIT :cap
) GROUP BY tenant_id, function;

-- name: count_pool_load
-- The same for a shared pool: every tenant's tasks of its functions, but for functions a
-- tenant registered itself (its own workers' alone: the shared claims leave them too),
-- the running ones those leased to pool workers.
SELECT tenant_id, function, 'ready', count(*), min(since) FROM (
    SELECT tenant_id, function, COALESCE(ready_at, run_at) AS since FROM tasks
    WHERE state = 'ready' AND function IN (SELECT value FROM json_each(:functions))
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function: not the pool's
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
    LIMIT :cap
) GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'paused', count(*), NULL FROM (
    SELECT tenant_id, function FROM tasks
    WHERE state = 'paused' AND function IN (SELECT value FROM json_each(:functions))
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function: not the pool's
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
    LIMIT :cap
) GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'running', count(*), NULL FROM tasks INDEXED BY tasks_leased
WHERE state = 'running' AND function IN (SELECT value FROM json_each(:functions))
  AND lease_owner LIKE 'pool:%'
GROUP BY tenant_id, function
UNION ALL
SELECT tenant_id, function, 'due', count(*), NULL FROM (
    SELECT tenant_id, function FROM tasks INDEXED BY tasks_scheduled
    WHERE state = 'scheduled' AND run_at <= :due_by
      AND function IN (SELECT value FROM json_each(:functions))
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function: not the pool's
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
    LIMIT :cap
) GROUP BY tenant_id, function;
