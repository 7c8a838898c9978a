-- SQLite. Tasks: submit, read, list, cancel, delete, dead letters and their retry; the
-- promotion of scheduled tasks, expiry and retention.

-- name: insert_task
-- positional: id, tenant_id, function, payload, state, priority, stag, key, tags,
--             max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
--             part, trace_parent, trace_state, webhooks
INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part, trace_parent, trace_state, webhooks)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_keyed_task
-- Same columns as insert_task; a key already held by the tenant inserts nothing.
INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part, trace_parent, trace_state, webhooks)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, key) WHERE key IS NOT NULL DO NOTHING
RETURNING id;

-- name: insert_payload
-- SQLite only: a large payload, beside its task (migrations/0021_payloads.sql; on
-- PostgreSQL, TOAST keeps large values out of the row and an update does not copy them).
INSERT INTO payloads (tenant_id, id, payload) VALUES (?, ?, ?);

-- name: delete_payload
-- SQLite only: a deleted task's large payload.
DELETE FROM payloads WHERE tenant_id = :tenant_id AND id = :id;

-- name: get_task_by_key
SELECT id, state, run_at FROM tasks WHERE tenant_id = ? AND key = ?;

-- name: get_task
SELECT id, tenant_id, function,
       CASE WHEN length(payload) = 0 THEN (SELECT p.payload FROM payloads p
           WHERE p.tenant_id = tasks.tenant_id AND p.id = tasks.id) ELSE payload END,
       state, priority, key, tags, attempt, max_attempts,
       timeout_s, run_at, expires_at, created_at, ready_at, dispatched_at, lease_owner,
       lease_until, finished_at, result, error, throttles, series_at, retry, part,
       started_at, webhooks, progress
FROM tasks WHERE tenant_id = :tenant_id AND id = :id;

-- name: get_task_states
SELECT id, state FROM tasks
WHERE tenant_id = :tenant_id AND id IN (SELECT value FROM json_each(:ids));

-- name: task_tenant
-- Whose task this is: for a shared pool's result that this node did not deliver.
SELECT tenant_id FROM tasks WHERE id = :id;

-- name: list_tasks
-- Keyset pages, newest first: every selector field is optional (NULL matches all).
SELECT id, function, state, priority, attempt, created_at, finished_at, key, tags
FROM tasks
WHERE tenant_id = :tenant_id AND id < :before
  AND (:functions IS NULL OR function IN (SELECT value FROM json_each(:functions)))
  AND (:states IS NULL OR state IN (SELECT value FROM json_each(:states)))
  AND (:tags IS NULL OR NOT EXISTS (
        SELECT 1 FROM json_each(:tags) AS wanted
        WHERE wanted.value NOT IN (SELECT value FROM json_each(COALESCE(tasks.tags, '[]')))))
  AND (:priority_min IS NULL OR priority >= :priority_min)
  AND (:priority_max IS NULL OR priority <= :priority_max)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:key IS NULL OR key = :key)
ORDER BY id DESC
LIMIT :limit;

-- name: cancellable_tasks
SELECT id, state, attempt, lease_owner, dispatched_at, started_at, ready_at FROM tasks
WHERE tenant_id = :tenant_id AND id IN (SELECT value FROM json_each(:ids))
  AND state IN ('scheduled', 'ready', 'paused', 'running');

-- name: cancel_task
UPDATE tasks SET state = 'cancelled', finished_at = :now, lease_owner = NULL, lease_until = NULL
WHERE tenant_id = :tenant_id AND id = :id AND state IN ('scheduled', 'ready', 'paused', 'running');

-- name: deletable_tasks
-- Running tasks are not deleted: cancel them first.
SELECT id FROM tasks
WHERE tenant_id = :tenant_id AND id IN (SELECT value FROM json_each(:ids)) AND state <> 'running';

-- name: delete_task
DELETE FROM tasks WHERE tenant_id = :tenant_id AND id = :id;

-- name: list_dead
-- With the last attempt's error type (the console groups dead letters by it).
SELECT id, function, attempt, error, finished_at,
       (SELECT a.error_type FROM attempts a WHERE a.task_id = tasks.id AND a.attempt = tasks.attempt)
FROM tasks
WHERE tenant_id = :tenant_id AND state = 'dead' AND id > :after
  AND (:function IS NULL OR function = :function)
  AND (:since IS NULL OR finished_at >= :since)
  AND (:until IS NULL OR finished_at < :until)
ORDER BY id LIMIT :limit;

-- name: retry_task
-- A new attempt series for a dead task: the history stays, the allowance starts again.
UPDATE tasks
SET state = 'ready', max_attempts = attempt - throttles + :max_attempts, series_at = :now,
    ready_at = :now, finished_at = NULL, error = NULL
WHERE tenant_id = :tenant_id AND id = :id AND state = 'dead';

-- name: due_soon
SELECT run_at, tenant_id, id FROM tasks
WHERE state = 'scheduled' AND run_at <= :until
ORDER BY run_at LIMIT :limit;

-- name: promote_due
-- The start tags are given right after (retag), in due order, by the tenants' fair chains.
UPDATE tasks SET state = 'ready', ready_at = :now
WHERE id IN (
    SELECT id FROM tasks WHERE state = 'scheduled' AND run_at <= :now ORDER BY run_at LIMIT :limit)
RETURNING tenant_id, function, priority, id, run_at;

-- name: promote_tasks
-- Fired from the in-memory timer heap; the state check makes a double fire harmless.
UPDATE tasks SET state = 'ready', ready_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'scheduled' AND run_at <= :now
RETURNING tenant_id, function, priority, id, run_at;

-- name: expire_tasks
UPDATE tasks SET state = 'expired', finished_at = :now
WHERE id IN (
    SELECT id FROM tasks
    WHERE expires_at IS NOT NULL AND expires_at <= :now AND state IN ('ready', 'scheduled', 'paused')
      AND attempt = 0  -- "not started by then": a task that ran once retries past its ttl
    LIMIT :limit)
RETURNING tenant_id, id;

-- name: retained_past
-- Ended tasks whose retention ran out. Ids are time-ordered, so the scan walks the
-- primary key from the oldest and stops at the first id created after the cutoff.
SELECT tenant_id, id FROM tasks
WHERE id < :id_before AND state IN ('succeeded', 'dead', 'cancelled', 'expired')
  AND finished_at < :before
ORDER BY id LIMIT :limit;
