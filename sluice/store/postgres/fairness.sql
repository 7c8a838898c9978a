-- PostgreSQL. Fair order (policy/fairness.py): start tags, the virtual clock, ready backlogs.

-- name: retag
-- Fair start tags for tasks that just became ready (policy/fairness.py); $1 ids in id
-- order (the lock order of every batch update here), $2 their tags.
-- The id = ANY lets the planner walk the primary key instead of scanning the table.
UPDATE tasks t SET stag = r.stag
FROM unnest($1::text[], $2::float8[]) AS r(id, stag)
WHERE t.id = ANY($1::text[]) AND t.id = r.id AND t.state = 'ready';

-- name: fair_clock
-- The virtual clock as the store knows it: the largest tag a shared pool is running,
-- else the head of the ready queue (policy/fairness.py).
SELECT COALESCE(
    (SELECT max(stag) FROM tasks
     WHERE state = 'running' AND lease_until IS NOT NULL AND lease_owner LIKE 'pool:%'),
    (SELECT stag FROM tasks WHERE state = 'ready' ORDER BY priority DESC, stag, id LIMIT 1));

-- name: last_tag
-- A tenant's last start tag among its ready tasks of these functions: where a fair
-- chain goes on.
SELECT max(stag) FROM tasks
WHERE tenant_id = $1 AND state = 'ready' AND function = ANY($2::text[]);

-- name: ready_backlog
-- Ready tasks per partition, through a partial index: read once a second for placement
-- (the less backlogged partition) and backpressure (the total), less often when the
-- count itself is slow (engine/backpressure.py).
SELECT part, count(*) FROM tasks WHERE state = 'ready' GROUP BY part;

-- name: tenant_backlog
-- A tenant's ready tasks per partition: is a heavy tenant hot (ALGORITHMS.md §3.4)?
SELECT part, count(*) FROM tasks WHERE tenant_id = $1 AND state = 'ready' GROUP BY part;

-- name: count_ahead
-- Ready tasks of the same tenant and function before a task in fair order (priority,
-- then start tag, then id), through the ready index, counted up to $3.
-- $1 tenant_id, $2 task id, $3 limit
SELECT count(*) FROM (
    SELECT 1 FROM tasks t, tasks me
    WHERE me.id = $2 AND me.tenant_id = $1
      AND t.tenant_id = $1 AND t.state = 'ready' AND t.function = me.function
      AND t.id <> me.id
      AND (t.priority > me.priority
           OR (t.priority = me.priority AND (t.stag, t.id) < (me.stag, me.id)))
    LIMIT $3) AS ahead;
