-- PostgreSQL. Attempts, the hot path: claims lease ready tasks to workers in fair order,
-- finishes are fenced on the lease, leases are renewed, reaped and handed back.

-- name: claim_tasks
-- The hot path: up to $4 ready tasks of the worker's functions in fair order (priority
-- first, then start tag), leased to the worker in one statement. MATERIALIZED keeps the
-- LIMIT a fence (the planner may otherwise update more rows than it picked); SKIP LOCKED
-- lets several nodes claim from one tenant without waiting on each other.
-- $1 tenant_id, $2 functions[], $3 now, $4 limit, $5 worker, $6 lease_until,
-- $7 partitions[] (NULL: all; a node claims only from the partitions it holds)
WITH picked AS MATERIALIZED (
    SELECT id FROM tasks
    WHERE tenant_id = $1 AND state = 'ready' AND function = ANY($2::text[])
      AND ($7::smallint[] IS NULL OR part = ANY($7::smallint[]))  -- this node's partitions
      AND (expires_at IS NULL OR expires_at > $3 OR attempt > 0)
    ORDER BY priority DESC, stag, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
UPDATE tasks t
SET state = 'running', attempt = t.attempt + 1, lease_owner = $5, lease_until = $6,
    dispatched_at = GREATEST($3, t.ready_at)  -- never before it was ready (a stamp taken
                                              -- before a concurrent submit committed)
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag,
          t.trace_parent, t.trace_state, t.ready_at, t.webhooks;

-- name: claim_level
-- The same claim from one priority level only ($7): a level's floor share; $8 partitions.
WITH picked AS MATERIALIZED (
    SELECT id FROM tasks
    WHERE tenant_id = $1 AND state = 'ready' AND priority = $7 AND function = ANY($2::text[])
      AND ($8::smallint[] IS NULL OR part = ANY($8::smallint[]))  -- this node's partitions
      AND (expires_at IS NULL OR expires_at > $3 OR attempt > 0)
    ORDER BY stag, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
UPDATE tasks t
SET state = 'running', attempt = t.attempt + 1, lease_owner = $5, lease_until = $6,
    dispatched_at = GREATEST($3, t.ready_at)  -- never before it was ready (a stamp taken
                                              -- before a concurrent submit committed)
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag,
          t.trace_parent, t.trace_state, t.ready_at, t.webhooks;

-- name: claim_shared
-- A shared pool's claim: the same, across every tenant, in fair (start tag) order.
-- $1 '*', $2 functions[], $3 now, $4 limit, $5 worker, $6 lease_until, $7 tenants left out,
-- $8 partitions[]
WITH picked AS MATERIALIZED (
    SELECT id FROM tasks
    WHERE $1::text = '*' AND state = 'ready' AND function = ANY($2::text[])
      AND tenant_id <> ALL($7::text[])  -- tenants claimed under their limits
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function stays its own
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
      AND ($8::smallint[] IS NULL OR part = ANY($8::smallint[]))  -- this node's partitions
      AND (expires_at IS NULL OR expires_at > $3 OR attempt > 0)
    ORDER BY priority DESC, stag, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
UPDATE tasks t
SET state = 'running', attempt = t.attempt + 1, lease_owner = $5, lease_until = $6,
    dispatched_at = GREATEST($3, t.ready_at)  -- never before it was ready (a stamp taken
                                              -- before a concurrent submit committed)
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag,
          t.trace_parent, t.trace_state, t.ready_at, t.webhooks;

-- name: claim_shared_for
-- A shared pool's claim from some tenants only ($9; a headroom claim: the quiet tenants'
-- tasks, found by the per-tenant index, whatever a flood's backlog ahead of them);
-- $7 tenants left out, $8 partitions[].
-- One index scan per tenant (tasks_ready leads with tenant_id), each locking at most $4,
-- then the first $4 of them: a plan that stays right when PostgreSQL's generic plan for
-- `tenant_id = ANY($9)` would sort the whole ready queue instead.
WITH picked AS MATERIALIZED (
    SELECT c.id FROM unnest($9::text[]) AS q(tenant)
    CROSS JOIN LATERAL (
        SELECT id, priority, stag FROM tasks
        WHERE $1::text = '*' AND tenant_id = q.tenant AND state = 'ready'
          AND function = ANY($2::text[])
          AND tenant_id <> ALL($7::text[])  -- tenants claimed under their limits
          AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function stays its own
                          WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
          AND ($8::smallint[] IS NULL OR part = ANY($8::smallint[]))  -- this node's
          AND (expires_at IS NULL OR expires_at > $3 OR attempt > 0)
        ORDER BY priority DESC, stag, id
        LIMIT $4
        FOR UPDATE SKIP LOCKED) c
    ORDER BY c.priority DESC, c.stag, c.id
    LIMIT $4)
UPDATE tasks t
SET state = 'running', attempt = t.attempt + 1, lease_owner = $5, lease_until = $6,
    dispatched_at = GREATEST($3, t.ready_at)
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag,
          t.trace_parent, t.trace_state, t.ready_at, t.webhooks;

-- name: claim_shared_level
-- A shared pool's claim from one priority level ($7); $8 tenants left out, $9 partitions.
WITH picked AS MATERIALIZED (
    SELECT id FROM tasks
    WHERE $1::text = '*' AND state = 'ready' AND priority = $7 AND function = ANY($2::text[])
      AND tenant_id <> ALL($8::text[])
      AND NOT EXISTS (SELECT 1 FROM functions f  -- a tenant's own function stays its own
                      WHERE f.tenant_id = tasks.tenant_id AND f.name = tasks.function)
      AND ($9::smallint[] IS NULL OR part = ANY($9::smallint[]))  -- this node's partitions
      AND (expires_at IS NULL OR expires_at > $3 OR attempt > 0)
    ORDER BY stag, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
UPDATE tasks t
SET state = 'running', attempt = t.attempt + 1, lease_owner = $5, lease_until = $6,
    dispatched_at = GREATEST($3, t.ready_at)  -- never before it was ready (a stamp taken
                                              -- before a concurrent submit committed)
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag,
          t.trace_parent, t.trace_state, t.ready_at, t.webhooks;

-- name: finish_task
-- Fenced: only the current attempt, still running and leased to this worker, may finish.
-- A frame of finishes is one statement; it returns the ids it finished.
-- $1 ids, $2 tenants, $3 attempts, $4 workers, $5 next states, $6 finished_at, $7 results,
-- $8 errors, $9 run_at, $10 ready_at, $11 throttled (0/1)
UPDATE tasks t
SET state = f.next_state, finished_at = f.finished_at, result = f.result, error = f.error,
    run_at = COALESCE(f.run_at, t.run_at), ready_at = COALESCE(f.ready_at, t.ready_at),
    throttles = t.throttles + f.throttled,
    lease_owner = NULL, lease_until = NULL
FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::float8[],
            $7::bytea[], $8::text[], $9::float8[], $10::float8[], $11::int[])
     AS f(id, tenant_id, attempt, worker, next_state, finished_at, result, error, run_at,
          ready_at, throttled)
WHERE t.id = f.id AND t.tenant_id = f.tenant_id AND t.attempt = f.attempt
  AND t.state = 'running' AND t.lease_owner = f.worker
RETURNING t.id;

-- name: insert_attempt
-- One array per column.
INSERT INTO attempts (tenant_id, task_id, attempt, worker, dispatched_at, started_at,
                      finished_at, outcome, error_type, error_message, traceback, ready_at,
                      recorded_at, held_s)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::float8[],
                     $6::float8[], $7::float8[], $8::text[], $9::text[], $10::text[],
                     $11::text[], $12::float8[], $13::float8[], $14::float8[])
ON CONFLICT (task_id, attempt) DO NOTHING;

-- name: task_exists
-- A refused result goes in its task's history only if the task is the tenant's: one
-- naming another tenant's task id, or an id never made, leaves no row behind.
SELECT 1 FROM tasks WHERE tenant_id = $1 AND id = $2;

-- name: get_attempt_worker
-- Who finished this attempt; a "lost" row means the reaper ended it, not the worker.
SELECT worker FROM attempts
WHERE tenant_id = $1 AND task_id = $2 AND attempt = $3 AND outcome <> 'lost';

-- name: list_attempts
SELECT task_id, attempt, worker, dispatched_at, started_at, finished_at, outcome,
       error_type, error_message, traceback, ready_at, recorded_at, held_s
FROM attempts WHERE tenant_id = $1 AND task_id = $2 ORDER BY attempt;

-- name: extend_leases
-- Every renewal of a heartbeat round in one statement. The caller sorts the rows by id,
-- so concurrent batches lock rows in the same order and cannot deadlock.
-- $1 tenants, $2 workers, $3 ids, $4 lease_until
UPDATE tasks t SET lease_until = $4
FROM unnest($1::text[], $2::text[], $3::text[]) AS r(tenant_id, worker, id)
WHERE t.id = r.id AND (t.tenant_id = r.tenant_id OR r.tenant_id = '*')
  AND t.lease_owner = r.worker AND t.state = 'running';

-- name: expired_leases
SELECT tenant_id, id, attempt, max_attempts, lease_owner, dispatched_at, function FROM tasks
WHERE state = 'running' AND lease_until < $1 ORDER BY lease_until LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: requeue_lost
-- A lost attempt: back to ready (or dead when it was the last one allowed).
-- $1 id, $2 tenant_id, $3 attempt, $4 now
UPDATE tasks
SET state = CASE WHEN attempt - throttles >= max_attempts THEN 'dead' ELSE 'ready' END,
    finished_at = CASE WHEN attempt - throttles >= max_attempts THEN $4::float8 END,
    error = CASE WHEN attempt - throttles >= max_attempts THEN 'lease lost' ELSE error END,
    ready_at = $4, lease_owner = NULL, lease_until = NULL
WHERE id = $1 AND tenant_id = $2 AND state = 'running' AND attempt = $3
RETURNING state;

-- name: release_task
-- A hand-back: the worker gives the task up unstarted or cut by a drain; costs no attempt.
-- Fenced on the claim as delivered, its dispatch time included: a hand-back gives its
-- attempt number back, so a newer claim by the same worker has the same number.
-- $1 tenant_id, $2 ids, $3 attempts, $4 dispatched_at, $5 worker, $6 now; returns the
-- ids handed back.
UPDATE tasks t
SET state = 'ready', attempt = t.attempt - 1, ready_at = $6, lease_owner = NULL,
    lease_until = NULL
FROM unnest($2::text[], $3::int[], $4::float8[]) AS h(id, attempt, dispatched_at)
WHERE (t.tenant_id = $1 OR $1 = '*') AND t.id = h.id AND t.attempt = h.attempt
  AND t.dispatched_at = h.dispatched_at AND t.state = 'running' AND t.lease_owner = $5
RETURNING t.id, t.tenant_id;

-- name: leased_to
SELECT id, attempt, dispatched_at FROM tasks
WHERE (tenant_id = $1 OR $1 = '*') AND lease_owner = $2 AND state = 'running'
  AND lease_until IS NOT NULL;  -- through the index of running rows (0010_leased_index)

-- name: get_claimed
-- Tasks another node claimed for a worker connected here ($1 its tenant, or '*' for a
-- shared pool; $3 the worker): still running and leased to that worker. An UPDATE that
-- changes nothing, for its row locks: a hand-back of the same rows being committed is
-- waited for, and the rows are judged as it left them (never delivered once released).
UPDATE tasks SET lease_until = lease_until
WHERE id = ANY($2::text[]) AND state = 'running' AND lease_owner = $3
  AND ($1::text = '*' OR tenant_id = $1)
RETURNING tenant_id, id, function, payload, attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags,
          stag, trace_parent, trace_state, ready_at, webhooks;

-- name: delete_attempts
DELETE FROM attempts WHERE tenant_id = $1 AND task_id = ANY($2::text[]);

-- name: insert_one_leased
-- PostgreSQL only (SQLite's insert_leased is one row already). Direct dispatch of a lone
-- task, the usual single submit to an idle worker: insert_one's row, already leased to
-- worker $22 until $23 as claim_tasks leases it ($21: its first attempt; $24:
-- dispatched_at). The caller knows every column: nothing comes back.
INSERT INTO tasks (tenant_id, id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part, trace_parent, trace_state, webhooks, attempt, lease_owner,
                   lease_until, dispatched_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $21, $22, $23, $24);

-- name: insert_leased
-- Several tasks at once (a lone one is insert_one_leased; SQLite's insert_leased is a row).
-- Direct dispatch (engine/direct.py) in one statement, so one round trip and one commit
-- (no BEGIN, no COMMIT): the tasks go in as insert_task puts them, except those named in
-- $21, which go in already leased to worker $22 until $23, as claim_tasks leases them;
-- those come back. $1..$20 as insert_task (its $14 is now: dispatched_at).
WITH ins AS (
    INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                       max_attempts, timeout_s, run_at, expires_at, created_at, ready_at,
                       retry, part, trace_parent, trace_state, webhooks, attempt,
                       lease_owner, lease_until, dispatched_at)
    SELECT id, $1, function, payload, CASE WHEN leased THEN 'running' ELSE state END,
           priority, stag, key, tags, max_attempts, timeout_s, run_at, expires_at,
           created_at, ready_at, retry, part, trace_parent, trace_state, webhooks,
           CASE WHEN leased THEN 1 ELSE 0 END,
           CASE WHEN leased THEN $22 END,
           CASE WHEN leased THEN $23::float8 END,
           CASE WHEN leased THEN GREATEST(created_at, ready_at) END
    FROM (SELECT u.*, (u.state = 'ready' AND u.id = ANY($21::text[])) AS leased
          FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::smallint[],
                      $7::float8[], $8::text[], $9::text[], $10::int[], $11::float8[],
                      $12::float8[], $13::float8[], $14::float8[], $15::float8[],
                      $16::bytea[], $17::smallint[], $18::text[], $19::text[], $20::text[])
               AS u(id, function, payload, state, priority, stag, key, tags, max_attempts,
                    timeout_s, run_at, expires_at, created_at, ready_at, retry, part,
                    trace_parent, trace_state, webhooks)) AS t
    RETURNING tenant_id, id, function, payload, attempt, max_attempts, timeout_s, priority,
              COALESCE(series_at, created_at) AS since, dispatched_at, lease_until,
              throttles, retry, tags, stag, trace_parent, trace_state, ready_at, webhooks,
              state)
SELECT tenant_id, id, function, payload, attempt, max_attempts, timeout_s, priority, since,
       dispatched_at, lease_until, throttles, retry, tags, stag, trace_parent, trace_state,
       ready_at, webhooks
FROM ins WHERE state = 'running';

-- name: promote_leased
-- Direct dispatch of delayed tasks fired by the timer heap: up to $6 of these due ones
-- (the tenant's, of the worker's functions) made ready and leased to an idle worker in
-- one statement, in the order a claim would take them. Due by $8, which the worker's
-- start_at makes good: run_at comes last.
-- $1 tenant_id, $2 ids[], $3 now, $4 worker, $5 lease_until, $6 limit, $7 functions[],
-- $8 due_by
WITH picked AS MATERIALIZED (
    SELECT id FROM tasks
    WHERE tenant_id = $1 AND id = ANY($2::text[]) AND state = 'scheduled' AND run_at <= $8
      AND function = ANY($7::text[])
      AND (expires_at IS NULL OR expires_at > GREATEST(run_at, $3) OR attempt > 0)
    ORDER BY priority DESC, stag, id
    LIMIT $6
    FOR UPDATE SKIP LOCKED)
UPDATE tasks t
SET state = 'running', attempt = t.attempt + 1, lease_owner = $4, lease_until = $5,
    ready_at = $3, dispatched_at = $3
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag, t.trace_parent, t.trace_state, t.ready_at,
          t.webhooks, t.run_at;
