-- PostgreSQL. Tasks: submit, read, list, cancel, delete, dead letters and their retry; the
-- promotion of scheduled tasks, expiry and retention.

-- name: insert_task
-- One array per column ($2..$20), all for the tenant $1.
INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part, trace_parent, trace_state, webhooks)
SELECT id, $1, function, payload, state, priority, stag, key, tags, max_attempts, timeout_s,
       run_at, expires_at, created_at, ready_at, retry, part, trace_parent, trace_state,
       webhooks
FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::smallint[], $7::float8[],
            $8::text[], $9::text[], $10::int[], $11::float8[], $12::float8[], $13::float8[],
            $14::float8[], $15::float8[], $16::bytea[], $17::smallint[], $18::text[],
            $19::text[], $20::text[])
     AS t(id, function, payload, state, priority, stag, key, tags, max_attempts, timeout_s,
          run_at, expires_at, created_at, ready_at, retry, part, trace_parent, trace_state,
          webhooks);

-- name: insert_one
-- PostgreSQL only (SQLite's insert_task is this already). A lone submit's task, as
-- insert_task puts it ($1 the tenant, then its columns in the same order): the arrays and
-- unnest of insert_task cost one row about 80 µs more (bench/RESULTS.md, 2026-12-05).
INSERT INTO tasks (tenant_id, id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part, trace_parent, trace_state, webhooks)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20);

-- name: end_backends
-- PostgreSQL only. The backends of inserts that closing cut off (store/postgres/writer.py):
-- their statements end with them, rolled back, instead of running on to a commit that
-- their callers, told to submit again, would then duplicate. Backends of the same role.
SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid;

-- name: insert_keyed_task
-- Same arrays as insert_task; a key already held by the tenant inserts nothing. Returns
-- the ids that were inserted.
INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part, trace_parent, trace_state, webhooks)
SELECT id, $1, function, payload, state, priority, stag, key, tags, max_attempts, timeout_s,
       run_at, expires_at, created_at, ready_at, retry, part, trace_parent, trace_state,
       webhooks
FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::smallint[], $7::float8[],
            $8::text[], $9::text[], $10::int[], $11::float8[], $12::float8[], $13::float8[],
            $14::float8[], $15::float8[], $16::bytea[], $17::smallint[], $18::text[],
            $19::text[], $20::text[])
     AS t(id, function, payload, state, priority, stag, key, tags, max_attempts, timeout_s,
          run_at, expires_at, created_at, ready_at, retry, part, trace_parent, trace_state,
          webhooks)
ON CONFLICT (tenant_id, key) WHERE key IS NOT NULL DO NOTHING
RETURNING id;

-- name: get_task_by_key
SELECT key, id, state, run_at FROM tasks WHERE tenant_id = $1 AND key = ANY($2::text[]);

-- name: get_task
SELECT id, tenant_id, function, payload, state, priority, key, tags, attempt, max_attempts,
       timeout_s, run_at, expires_at, created_at, ready_at, dispatched_at, lease_owner,
       lease_until, finished_at, result, error, throttles, series_at, retry, part,
       started_at, webhooks, progress
FROM tasks WHERE tenant_id = $1 AND id = $2;

-- name: get_task_states
SELECT id, state FROM tasks WHERE tenant_id = $1 AND id = ANY($2::text[]);

-- name: task_tenant
-- Whose task this is: for a shared pool's result that this node did not deliver.
SELECT tenant_id FROM tasks WHERE id = $1;

-- name: list_tasks
-- Keyset pages, newest first: every selector field is optional (NULL matches all).
SELECT id, function, state, priority, attempt, created_at, finished_at, key, tags
FROM tasks
WHERE tenant_id = $1 AND id < $2
  AND ($3::text[] IS NULL OR function = ANY($3::text[]))
  AND ($4::text[] IS NULL OR state = ANY($4::text[]))
  AND ($5::jsonb IS NULL OR COALESCE(tags, '[]')::jsonb @> $5::jsonb)
  AND ($6::int IS NULL OR priority >= $6)
  AND ($7::int IS NULL OR priority <= $7)
  AND ($8::float8 IS NULL OR created_at >= $8)
  AND ($9::float8 IS NULL OR created_at < $9)
  AND ($10::text IS NULL OR key = $10)
ORDER BY id DESC
LIMIT $11;

-- name: cancellable_tasks
SELECT id, state, attempt, lease_owner, dispatched_at, started_at, ready_at FROM tasks
WHERE tenant_id = $1 AND id = ANY($2::text[]) AND state IN ('scheduled', 'ready', 'paused', 'running')
ORDER BY id
FOR UPDATE;

-- name: cancel_task
UPDATE tasks SET state = 'cancelled', finished_at = $3, lease_owner = NULL, lease_until = NULL
WHERE tenant_id = $1 AND id = ANY($2::text[]) AND state IN ('scheduled', 'ready', 'paused', 'running');

-- name: deletable_tasks
-- Running tasks are not deleted: cancel them first.
SELECT id FROM tasks
WHERE tenant_id = $1 AND id = ANY($2::text[]) AND state <> 'running'
FOR UPDATE;

-- name: delete_task
DELETE FROM tasks WHERE tenant_id = $1 AND id = ANY($2::text[]);

-- name: list_dead
-- With the last attempt's error type (the console groups dead letters by it).
SELECT id, function, attempt, error, finished_at,
       (SELECT a.error_type FROM attempts a WHERE a.task_id = tasks.id AND a.attempt = tasks.attempt)
FROM tasks
WHERE tenant_id = $1 AND state = 'dead' AND id > $2
  AND ($3::text IS NULL OR function = $3)
  AND ($4::float8 IS NULL OR finished_at >= $4)
  AND ($5::float8 IS NULL OR finished_at < $5)
ORDER BY id LIMIT $6;

-- name: retry_task
-- A new attempt series for dead tasks: the history stays, the allowance starts again.
-- $1 tenant_id, $2 ids, $3 functions, $4 their allowances, $5 now, $6 the default
-- allowance. The new allowance is the task's own policy's, else its function's, else the
-- default. Returns the ids retried.
UPDATE tasks t
SET state = 'ready', series_at = $5, ready_at = $5, finished_at = NULL, error = NULL,
    max_attempts = t.attempt - t.throttles + COALESCE(
        (convert_from(t.retry, 'UTF8')::jsonb ->> 'max_attempts')::int,
        (SELECT a.allowance FROM unnest($3::text[], $4::int[]) AS a(function, allowance)
         WHERE a.function = t.function), $6)
WHERE t.tenant_id = $1 AND t.id = ANY($2::text[]) AND t.state = 'dead'
RETURNING t.id;

-- name: due_soon
SELECT run_at, tenant_id, id FROM tasks
WHERE state = 'scheduled' AND run_at <= $1
ORDER BY run_at LIMIT $2;

-- name: promote_due
-- The start tags are given right after (retag), in due order, by the tenants' fair chains.
UPDATE tasks t SET state = 'ready', ready_at = $1
FROM (SELECT id FROM tasks WHERE state = 'scheduled' AND run_at <= $1
      ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED) AS due
WHERE t.id = due.id
RETURNING t.tenant_id, t.function, t.priority, t.id, t.run_at;

-- name: promote_tasks
-- Fired from the in-memory timer heap; the state check makes a double fire harmless.
UPDATE tasks SET state = 'ready', ready_at = $2
WHERE id = ANY($1::text[]) AND state = 'scheduled' AND run_at <= $2
RETURNING tenant_id, function, priority, id, run_at;

-- name: expire_tasks
UPDATE tasks t SET state = 'expired', finished_at = $1
FROM (SELECT id FROM tasks
      WHERE expires_at IS NOT NULL AND expires_at <= $1 AND state IN ('ready', 'scheduled', 'paused')
        AND attempt = 0  -- "not started by then": a task that ran once retries past its ttl
      LIMIT $2 FOR UPDATE SKIP LOCKED) AS gone
WHERE t.id = gone.id
RETURNING t.tenant_id, t.id;

-- name: retained_past
-- Ended tasks whose retention ran out. Ids are time-ordered, so the scan walks the
-- primary key from the oldest and stops at the first id created after the cutoff.
SELECT tenant_id, id FROM tasks
WHERE id < $1 AND state IN ('succeeded', 'dead', 'cancelled', 'expired') AND finished_at < $2
ORDER BY id LIMIT $3;
