-- SQLite. Attempts, the hot path: claims lease ready tasks to workers in fair order,
-- finishes are fenced on the lease, leases are renewed, reaped and handed back.
-- Every write runs in the writer thread's BEGIN IMMEDIATE transaction and SQLite
-- serialises writers, so the claims need no SKIP LOCKED (PostgreSQL's do).

-- name: claim_tasks
-- The hot path: take up to :limit ready tasks of the worker's functions in fair order
-- (priority first, then start tag) and lease them to the worker, in one statement.
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, dispatched_at = MAX(:now, COALESCE(ready_at, :now))
WHERE id IN (
    SELECT id FROM tasks
    WHERE tenant_id = :tenant_id AND state = 'ready'
      AND function IN (SELECT value FROM json_each(:functions))
      AND (:parts IS NULL OR part IN (SELECT value FROM json_each(:parts)))  -- this node's
      AND (expires_at IS NULL OR expires_at > :now OR attempt > 0)
    ORDER BY priority DESC, stag, id
    LIMIT :limit)
RETURNING tenant_id, id, function,
       CASE WHEN length(payload) = 0 THEN (SELECT p.payload FROM payloads p
           WHERE p.tenant_id = tasks.tenant_id AND p.id = tasks.id) ELSE payload END,
       attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag,
          trace_parent, trace_state, ready_at, webhooks;

-- name: claim_level
-- The same claim from one priority level only: a level's floor share (policy/priority.py).
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, dispatched_at = MAX(:now, COALESCE(ready_at, :now))
WHERE id IN (
    SELECT id FROM tasks
    WHERE tenant_id = :tenant_id AND state = 'ready' AND priority = :priority
      AND function IN (SELECT value FROM json_each(:functions))
      AND (:parts IS NULL OR part IN (SELECT value FROM json_each(:parts)))  -- this node's
      AND (expires_at IS NULL OR expires_at > :now OR attempt > 0)
    ORDER BY stag, id
    LIMIT :limit)
RETURNING tenant_id, id, function,
       CASE WHEN length(payload) = 0 THEN (SELECT p.payload FROM payloads p
           WHERE p.tenant_id = tasks.tenant_id AND p.id = tasks.id) ELSE payload END,
       attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag,
          trace_parent, trace_state, ready_at, webhooks;

-- name: claim_shared
-- A shared pool's claim: the same, across every tenant, in fair (start tag) order.
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, dispatched_at = MAX(:now, COALESCE(ready_at, :now))
WHERE id IN (
    SELECT id FROM tasks
    WHERE state = 'ready'
      AND tenant_id NOT IN (SELECT value FROM json_each(:exclude))  -- claimed under limits
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function stays its own
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
      AND function IN (SELECT value FROM json_each(:functions))
      AND (:parts IS NULL OR part IN (SELECT value FROM json_each(:parts)))  -- this node's
      AND (expires_at IS NULL OR expires_at > :now OR attempt > 0)
    ORDER BY priority DESC, stag, id
    LIMIT :limit)
RETURNING tenant_id, id, function,
       CASE WHEN length(payload) = 0 THEN (SELECT p.payload FROM payloads p
           WHERE p.tenant_id = tasks.tenant_id AND p.id = tasks.id) ELSE payload END,
       attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag,
          trace_parent, trace_state, ready_at, webhooks;

-- name: claim_shared_for
-- A shared pool's claim from some tenants only (a headroom claim: the quiet tenants'
-- tasks, found by the per-tenant index, whatever a flood's backlog ahead of them).
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, dispatched_at = MAX(:now, COALESCE(ready_at, :now))
WHERE id IN (
    SELECT id FROM tasks INDEXED BY tasks_ready
    WHERE state = 'ready' AND tenant_id IN (SELECT value FROM json_each(:tenants))
      AND tenant_id NOT IN (SELECT value FROM json_each(:exclude))  -- claimed under limits
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function stays its own
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
      AND function IN (SELECT value FROM json_each(:functions))
      AND (:parts IS NULL OR part IN (SELECT value FROM json_each(:parts)))  -- this node's
      AND (expires_at IS NULL OR expires_at > :now OR attempt > 0)
    ORDER BY priority DESC, stag, id
    LIMIT :limit)
RETURNING tenant_id, id, function,
       CASE WHEN length(payload) = 0 THEN (SELECT p.payload FROM payloads p
           WHERE p.tenant_id = tasks.tenant_id AND p.id = tasks.id) ELSE payload END,
       attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag,
          trace_parent, trace_state, ready_at, webhooks;

-- name: claim_shared_level
-- A shared pool's claim from one priority level.
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, dispatched_at = MAX(:now, COALESCE(ready_at, :now))
WHERE id IN (
    SELECT id FROM tasks
    WHERE state = 'ready' AND priority = :priority
      AND tenant_id NOT IN (SELECT value FROM json_each(:exclude))  -- claimed under limits
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function stays its own
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
      AND function IN (SELECT value FROM json_each(:functions))
      AND (:parts IS NULL OR part IN (SELECT value FROM json_each(:parts)))  -- this node's
      AND (expires_at IS NULL OR expires_at > :now OR attempt > 0)
    ORDER BY stag, id
    LIMIT :limit)
RETURNING tenant_id, id, function,
       CASE WHEN length(payload) = 0 THEN (SELECT p.payload FROM payloads p
           WHERE p.tenant_id = tasks.tenant_id AND p.id = tasks.id) ELSE payload END,
       attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag,
          trace_parent, trace_state, ready_at, webhooks;

-- name: finish_task
-- Fenced: only the current attempt, still running and leased to this worker, may finish.
-- positional: next_state, finished_at, result, error, run_at, ready_at, throttled,
--             task_id, tenant_id, attempt, worker
-- (Positional, as insert_attempt: both run once per finished task, and binding names
-- cost the drain's writer about a fifth of its time in them.)
UPDATE tasks
SET state = ?, finished_at = ?, result = ?, error = ?,
    run_at = COALESCE(?, run_at), ready_at = COALESCE(?, ready_at),
    throttles = throttles + ?,
    lease_owner = NULL, lease_until = NULL
WHERE id = ? AND tenant_id = ? AND attempt = ? AND state = 'running' AND lease_owner = ?;

-- name: insert_attempt
-- positional: tenant_id, task_id, attempt, worker, dispatched_at, started_at, finished_at,
--             outcome, error_type, error_message, traceback, ready_at, recorded_at, held_s
INSERT INTO attempts (tenant_id, task_id, attempt, worker, dispatched_at, started_at,
                      finished_at, outcome, error_type, error_message, traceback, ready_at,
                      recorded_at, held_s)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (task_id, attempt) DO NOTHING;

-- name: task_exists
-- A refused result goes in its task's history only if the task is the tenant's: one
-- naming another tenant's task id, or an id never made, leaves no row behind.
SELECT 1 FROM tasks WHERE tenant_id = :tenant_id AND id = :task_id;

-- name: get_attempt_worker
-- Who finished this attempt; a "lost" row means the reaper ended it, not the worker.
SELECT worker FROM attempts
WHERE tenant_id = :tenant_id AND task_id = :task_id AND attempt = :attempt AND outcome <> 'lost';

-- name: list_attempts
SELECT task_id, attempt, worker, dispatched_at, started_at, finished_at, outcome,
       error_type, error_message, traceback, ready_at, recorded_at, held_s
FROM attempts WHERE tenant_id = :tenant_id AND task_id = :task_id ORDER BY attempt;

-- name: extend_leases
-- A shared pool's renewal names no tenant ('*'): its tasks are anyone's.
UPDATE tasks SET lease_until = :lease_until
WHERE (tenant_id = :tenant_id OR :tenant_id = '*') AND lease_owner = :worker
  AND state = 'running' AND id IN (SELECT value FROM json_each(:ids));

-- name: expired_leases
SELECT tenant_id, id, attempt, max_attempts, lease_owner, dispatched_at, function FROM tasks
WHERE state = 'running' AND lease_until < :now ORDER BY lease_until LIMIT :limit;

-- name: requeue_lost
-- A lost attempt: back to ready (or dead when it was the last one allowed).
UPDATE tasks
SET state = CASE WHEN attempt - throttles >= max_attempts THEN 'dead' ELSE 'ready' END,
    finished_at = CASE WHEN attempt - throttles >= max_attempts THEN :now ELSE NULL END,
    error = CASE WHEN attempt - throttles >= max_attempts THEN 'lease lost' ELSE error END,
    ready_at = :now, lease_owner = NULL, lease_until = NULL
WHERE id = :id AND tenant_id = :tenant_id AND state = 'running' AND attempt = :attempt
RETURNING state;

-- name: release_task
-- A hand-back: the worker gives the task up unstarted or cut by a drain; costs no attempt.
-- Fenced on the claim as delivered, its dispatch time included: a hand-back gives its
-- attempt number back, so a newer claim by the same worker has the same number.
UPDATE tasks
SET state = 'ready', attempt = attempt - 1, ready_at = :now, lease_owner = NULL,
    lease_until = NULL
WHERE (tenant_id = :tenant_id OR :tenant_id = '*') AND id = :id AND attempt = :attempt
  AND dispatched_at = :dispatched_at AND state = 'running' AND lease_owner = :worker
RETURNING tenant_id;

-- name: leased_to
SELECT id, attempt, dispatched_at FROM tasks
WHERE (tenant_id = :tenant_id OR :tenant_id = '*') AND lease_owner = :worker
  AND state = 'running';

-- name: get_claimed
-- Tasks claimed for a worker by the node that holds their partition, to deliver here.
SELECT tenant_id, id, function,
       CASE WHEN length(payload) = 0 THEN (SELECT p.payload FROM payloads p
           WHERE p.tenant_id = tasks.tenant_id AND p.id = tasks.id) ELSE payload END,
       attempt, max_attempts, timeout_s, priority,
       COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags,
       stag, trace_parent, trace_state, ready_at, webhooks
FROM tasks
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running'
  AND lease_owner = :worker AND (:tenant_id = '*' OR tenant_id = :tenant_id);

-- name: delete_attempts
DELETE FROM attempts WHERE task_id = :id AND tenant_id = :tenant_id;

-- name: insert_leased
-- Direct dispatch (engine/direct.py): a task that goes in already leased to an idle
-- worker, as claim_tasks leases one (PostgreSQL does the whole submit in one statement of
-- the same name). Written once: never put in the ready indexes only to be taken out of
-- them by the same commit. Columns as insert_task's, then attempt, lease_owner,
-- lease_until, dispatched_at.
INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part, trace_parent, trace_state, webhooks, attempt, lease_owner,
                   lease_until, dispatched_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: promote_leased
-- Direct dispatch of delayed tasks fired by the timer heap: up to :limit of these due
-- ones (the tenant's, of the worker's functions; due by :due_by, which the worker's
-- start_at makes good) made ready and leased to an idle worker in one statement, in the
-- order a claim would take them. run_at comes last: the worker's start_at.
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, ready_at = :now, dispatched_at = :now
WHERE id IN (
    SELECT id FROM tasks
    WHERE tenant_id = :tenant_id AND state = 'scheduled' AND run_at <= :due_by
      AND id IN (SELECT value FROM json_each(:ids))
      AND function IN (SELECT value FROM json_each(:functions))
      AND (expires_at IS NULL OR expires_at > MAX(run_at, :now) OR attempt > 0)
    ORDER BY priority DESC, stag, id
    LIMIT :limit)
RETURNING tenant_id, id, function,
       CASE WHEN length(payload) = 0 THEN (SELECT p.payload FROM payloads p
           WHERE p.tenant_id = tasks.tenant_id AND p.id = tasks.id) ELSE payload END,
       attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag,
          trace_parent, trace_state, ready_at, webhooks, run_at;
