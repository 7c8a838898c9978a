-- SQLite. Fair order (policy/fairness.py): start tags, the virtual clock, ready backlogs.

-- name: retag
-- Fair start tags for tasks that just became ready (policy/fairness.py).
UPDATE tasks SET stag = :stag WHERE id = :id AND state = 'ready';

-- name: fair_clock
-- The virtual clock as the store knows it: the largest tag a shared pool is running,
-- else the head of the ready queue (policy/fairness.py).
SELECT COALESCE(
    (SELECT max(stag) FROM tasks WHERE state = 'running' AND lease_owner LIKE 'pool:%'),
    (SELECT stag FROM tasks WHERE state = 'ready' ORDER BY priority DESC, stag, id LIMIT 1));

-- name: last_tag
-- A tenant's last start tag among its ready tasks of these functions: where a fair
-- chain goes on.
SELECT max(stag) FROM tasks
WHERE tenant_id = :tenant_id AND state = 'ready'
  AND function IN (SELECT value FROM json_each(:functions));

-- name: ready_backlog
-- Ready tasks per partition, through the partial index of the shared claim: read once a
-- second for placement (the less backlogged partition) and backpressure (the total), less
-- often when the count itself is slow (engine/backpressure.py).
SELECT part, count(*) FROM tasks INDEXED BY tasks_ready_shared WHERE state = 'ready'
GROUP BY part;

-- name: tenant_backlog
-- A tenant's ready tasks per partition: is a heavy tenant hot (ALGORITHMS.md §3.4)?
SELECT part, count(*) FROM tasks WHERE tenant_id = :tenant_id AND state = 'ready'
GROUP BY part;

-- name: count_ahead
-- Ready tasks of the same tenant and function before a task in fair order (priority,
-- then start tag, then id), through the ready index, counted up to :limit.
SELECT count(*) FROM (
    SELECT 1 FROM tasks t, tasks me
    WHERE me.id = :id AND me.tenant_id = :tenant_id
      AND t.tenant_id = :tenant_id AND t.state = 'ready' AND t.function = me.function
      AND t.id <> me.id
      AND (t.priority > me.priority
           OR (t.priority = me.priority AND (t.stag < me.stag OR (t.stag = me.stag AND t.id < me.id))))
    LIMIT :limit);
