-- Named queries of the PostgreSQL backend: the same names as the SQLite dialect (a test
-- checks), written for asyncpg's positional parameters. Batches travel as arrays and are
-- opened with unnest(), so a frame of a thousand rows is one statement and one round trip.
-- Every query that compares with "now" takes it as a parameter so a fake clock reaches SQL;
-- named leases are the exception, judged on the database's own clock (store/base.py).

-- name: create_tenant
INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3);

-- name: get_tenant_by_name
SELECT id, name, created_at FROM tenants WHERE name = $1;

-- name: get_tenant
SELECT id, name, created_at FROM tenants WHERE id = $1;

-- name: create_api_key
INSERT INTO api_keys (key_hash, tenant_id, prefix, created_at) VALUES ($1, $2, $3, $4);

-- name: find_api_key
SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL;

-- name: upsert_function
-- $1 tenant_id, $2 names[], $3 configs[], $4 now
INSERT INTO functions (tenant_id, name, config, updated_at)
SELECT $1, name, config, $4 FROM unnest($2::text[], $3::bytea[]) AS f(name, config)
ON CONFLICT (tenant_id, name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at;

-- name: list_functions
SELECT name, config FROM functions WHERE tenant_id = $1 ORDER BY name;

-- name: insert_task
-- One array per column ($2..$17), all for the tenant $1.
INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part)
SELECT id, $1, function, payload, state, priority, stag, key, tags, max_attempts, timeout_s,
       run_at, expires_at, created_at, ready_at, retry, part
FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::smallint[], $7::float8[],
            $8::text[], $9::text[], $10::int[], $11::float8[], $12::float8[], $13::float8[],
            $14::float8[], $15::float8[], $16::bytea[], $17::smallint[])
     AS t(id, function, payload, state, priority, stag, key, tags, max_attempts, timeout_s,
          run_at, expires_at, created_at, ready_at, retry, part);

-- name: insert_keyed_task
-- Same arrays as insert_task; a key already held by the tenant inserts nothing. Returns
-- the ids that were inserted.
INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part)
SELECT id, $1, function, payload, state, priority, stag, key, tags, max_attempts, timeout_s,
       run_at, expires_at, created_at, ready_at, retry, part
FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::smallint[], $7::float8[],
            $8::text[], $9::text[], $10::int[], $11::float8[], $12::float8[], $13::float8[],
            $14::float8[], $15::float8[], $16::bytea[], $17::smallint[])
     AS t(id, function, payload, state, priority, stag, key, tags, max_attempts, timeout_s,
          run_at, expires_at, created_at, ready_at, retry, part)
ON CONFLICT (tenant_id, key) WHERE key IS NOT NULL DO NOTHING
RETURNING id;

-- name: get_task_by_key
SELECT key, id, state, run_at FROM tasks WHERE tenant_id = $1 AND key = ANY($2::text[]);

-- name: get_task
SELECT id, tenant_id, function, payload, state, priority, key, tags, attempt, max_attempts,
       timeout_s, run_at, expires_at, created_at, ready_at, dispatched_at, lease_owner,
       lease_until, finished_at, result, error, throttles, series_at, retry, part
FROM tasks WHERE tenant_id = $1 AND id = $2;

-- name: get_task_states
SELECT id, state FROM tasks WHERE tenant_id = $1 AND id = ANY($2::text[]);

-- name: list_attempts
SELECT task_id, attempt, worker, dispatched_at, started_at, finished_at, outcome,
       error_type, error_message, traceback
FROM attempts WHERE tenant_id = $1 AND task_id = $2 ORDER BY attempt;

-- name: list_events
SELECT task_id, at, kind, detail FROM events
WHERE tenant_id = $1 AND task_id = $2 ORDER BY at;

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
    dispatched_at = $3
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag;

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
    dispatched_at = $3
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag;

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
    dispatched_at = $3
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag;

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
    dispatched_at = $3
FROM picked WHERE t.id = picked.id
RETURNING t.tenant_id, t.id, t.function, t.payload, t.attempt, t.max_attempts, t.timeout_s,
          t.priority, COALESCE(t.series_at, t.created_at), t.dispatched_at, t.lease_until,
          t.throttles, t.retry, t.tags, t.stag;

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
                      finished_at, outcome, error_type, error_message, traceback)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::float8[],
                     $6::float8[], $7::float8[], $8::text[], $9::text[], $10::text[],
                     $11::text[])
ON CONFLICT (task_id, attempt) DO NOTHING;

-- name: get_attempt_worker
-- Who finished this attempt; a "lost" row means the reaper ended it, not the worker.
SELECT worker FROM attempts
WHERE tenant_id = $1 AND task_id = $2 AND attempt = $3 AND outcome <> 'lost';

-- name: insert_event
-- $1 tenants, $2 task ids, $3 now, $4 kinds, $5 details
INSERT INTO events (tenant_id, task_id, at, kind, detail)
SELECT tenant_id, task_id, $3, kind, detail
FROM unnest($1::text[], $2::text[], $4::text[], $5::text[]) AS e(tenant_id, task_id, kind, detail);

-- name: extend_leases
-- Every renewal of a heartbeat round in one statement. The caller sorts the rows by id,
-- so concurrent batches lock rows in the same order and cannot deadlock.
-- $1 tenants, $2 workers, $3 ids, $4 lease_until
UPDATE tasks t SET lease_until = $4
FROM unnest($1::text[], $2::text[], $3::text[]) AS r(tenant_id, worker, id)
WHERE t.id = r.id AND (t.tenant_id = r.tenant_id OR r.tenant_id = '*')
  AND t.lease_owner = r.worker AND t.state = 'running';

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

-- name: retag
-- Fair start tags for tasks that just became ready (policy/fairness.py); $1 ids in id
-- order (the lock order of every batch update here), $2 their tags.
-- The id = ANY lets the planner walk the primary key instead of scanning the table.
UPDATE tasks t SET stag = r.stag
FROM unnest($1::text[], $2::float8[]) AS r(id, stag)
WHERE t.id = ANY($1::text[]) AND t.id = r.id AND t.state = 'ready';

-- name: expired_leases
SELECT tenant_id, id, attempt, max_attempts, lease_owner, dispatched_at FROM tasks
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

-- name: expire_tasks
UPDATE tasks t SET state = 'expired', finished_at = $1
FROM (SELECT id FROM tasks
      WHERE expires_at IS NOT NULL AND expires_at <= $1 AND state IN ('ready', 'scheduled', 'paused')
        AND attempt = 0  -- "not started by then": a task that ran once retries past its ttl
      LIMIT $2 FOR UPDATE SKIP LOCKED) AS gone
WHERE t.id = gone.id
RETURNING t.tenant_id, t.id;

-- name: cancellable_tasks
SELECT id, state, attempt, lease_owner, dispatched_at FROM tasks
WHERE tenant_id = $1 AND id = ANY($2::text[]) AND state IN ('scheduled', 'ready', 'paused', 'running')
ORDER BY id
FOR UPDATE;

-- name: cancel_task
UPDATE tasks SET state = 'cancelled', finished_at = $3, lease_owner = NULL, lease_until = NULL
WHERE tenant_id = $1 AND id = ANY($2::text[]) AND state IN ('scheduled', 'ready', 'paused', 'running');

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

-- name: task_tenant
-- Whose task this is: for a shared pool's result that this node did not deliver.
SELECT tenant_id FROM tasks WHERE id = $1;

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

-- name: list_dead
SELECT id, function, attempt, error, finished_at FROM tasks
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

-- name: retained_past
-- Ended tasks whose retention ran out. Ids are time-ordered, so the scan walks the
-- primary key from the oldest and stops at the first id created after the cutoff.
SELECT tenant_id, id FROM tasks
WHERE id < $1 AND state IN ('succeeded', 'dead', 'cancelled', 'expired') AND finished_at < $2
ORDER BY id LIMIT $3;

-- name: delete_task
DELETE FROM tasks WHERE tenant_id = $1 AND id = ANY($2::text[]);

-- name: delete_attempts
DELETE FROM attempts WHERE tenant_id = $1 AND task_id = ANY($2::text[]);

-- name: delete_events
DELETE FROM events WHERE tenant_id = $1 AND task_id = ANY($2::text[]);

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

-- name: deletable_tasks
-- Running tasks are not deleted: cancel them first.
SELECT id FROM tasks
WHERE tenant_id = $1 AND id = ANY($2::text[]) AND state <> 'running'
FOR UPDATE;

-- name: list_tenants
SELECT id, name, created_at FROM tenants ORDER BY name;

-- name: list_api_keys
SELECT substr(key_hash, 1, 16), prefix, created_at, revoked_at FROM api_keys
WHERE tenant_id = $1 ORDER BY created_at;

-- name: revoke_api_key
-- A key is named by the first 16 hex digits of its hash (its id); the key itself is unknown.
UPDATE api_keys SET revoked_at = $3
WHERE tenant_id = $1 AND substr(key_hash, 1, 16) = $2 AND revoked_at IS NULL
RETURNING key_hash;

-- name: acquire_lease
-- Take or keep a named lease: granted when free, expired, or already ours. Set and judged
-- on the database's clock; clock_timestamp(), not now(): the time of the judgement itself,
-- not of a transaction's start or of a wait for the row's lock.
-- $1 name, $2 holder, $3 ttl_s; returns the holder after the statement.
INSERT INTO leases (name, holder, until)
VALUES ($1, $2, extract(epoch FROM clock_timestamp())::float8 + $3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE leases.holder = excluded.holder
   OR leases.until < extract(epoch FROM clock_timestamp())::float8
RETURNING holder;

-- name: put_schedule
-- Create, or replace the config of, a schedule; a replaced one keeps its firing state, so
-- a fire time already run or skipped never fires again.
-- $1 tenant_id, $2 name, $3 config, $4 now, $5 next_fire_at, $6 next_fire_at if replaced,
-- $7 the replaced schedule's new floor for last_fire_at
INSERT INTO schedules (tenant_id, name, config, created_at, last_fire_at, next_fire_at)
VALUES ($1, $2, $3, $4, $4, $5)
ON CONFLICT (tenant_id, name) DO UPDATE
SET config = excluded.config, next_fire_at = $6,
    last_fire_at = greatest(schedules.last_fire_at, $7);

-- name: list_schedules
SELECT tenant_id, name, config, paused, created_at, last_fire_at, next_fire_at, fired, skipped
FROM schedules WHERE tenant_id = $1 AND ($2::text IS NULL OR name = $2) ORDER BY name;

-- name: delete_schedule
DELETE FROM schedules WHERE tenant_id = $1 AND name = $2 RETURNING name;

-- name: pause_schedule
-- Pausing keeps the firing state; resuming starts after now (fires missed while paused
-- are not run) with the next fire time the caller computed.
-- $1 tenant_id, $2 name, $3 paused, $4 now, $5 next_fire_at
UPDATE schedules
SET paused = $3, last_fire_at = greatest(last_fire_at, $4), next_fire_at = $5
WHERE tenant_id = $1 AND name = $2
RETURNING name;

-- name: due_schedules
SELECT tenant_id, name, config, paused, created_at, last_fire_at, next_fire_at, fired, skipped
FROM schedules WHERE paused = 0 AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2;

-- name: advance_schedule
-- Compare-and-set: only the node that saw last_fire_at = $3 moves it on.
-- $1 tenant_id, $2 name, $3 last_before, $4 last_after, $5 next_fire_at, $6 fired, $7 skipped
UPDATE schedules
SET last_fire_at = $4, next_fire_at = $5, fired = fired + $6, skipped = skipped + $7
WHERE tenant_id = $1 AND name = $2 AND last_fire_at = $3 AND paused = 0
RETURNING name;

-- name: insert_pause
INSERT INTO pauses (tenant_id, id, selector, created_at) VALUES ($1, $2, $3, $4);

-- name: list_pauses
-- Every tenant's when $1 is NULL (a node loading its cache after a hint).
SELECT tenant_id, id, selector, created_at FROM pauses
WHERE ($1::text IS NULL OR tenant_id = $1) ORDER BY tenant_id, created_at, id;

-- name: delete_pause
DELETE FROM pauses WHERE tenant_id = $1 AND id = $2 RETURNING selector;

-- name: hold_tasks
-- Hold waiting tasks under a pause; running ones are left to finish.
UPDATE tasks SET state = 'paused'
WHERE tenant_id = $1 AND id = ANY($2::text[]) AND state IN ('ready', 'scheduled')
RETURNING id;

-- name: unhold_tasks
-- Lift the hold: due tasks are ready again with their start tags (their fair place),
-- the others scheduled for their time. $1 tenant, $2 ids, $3 now.
UPDATE tasks
SET state = CASE WHEN run_at > $3 THEN 'scheduled' ELSE 'ready' END,
    ready_at = CASE WHEN run_at > $3 THEN ready_at ELSE $3 END
WHERE tenant_id = $1 AND id = ANY($2::text[]) AND state = 'paused'
RETURNING id, state;

-- name: put_subscription
INSERT INTO subscriptions (tenant_id, name, topic, config, created_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, name) DO UPDATE SET topic = excluded.topic, config = excluded.config;

-- name: list_subscriptions
SELECT name, topic, config, created_at FROM subscriptions
WHERE tenant_id = $1 AND ($2::text IS NULL OR topic = $2) ORDER BY name;

-- name: delete_subscription
DELETE FROM subscriptions WHERE tenant_id = $1 AND name = $2 RETURNING name;

-- name: count_running
-- $2 NULL: every function of the tenant.
SELECT count(*) FROM tasks
WHERE state = 'running' AND lease_until IS NOT NULL AND tenant_id = $1
  AND ($2::text IS NULL OR function = $2)
  AND id <> ALL($3::text[]);  -- $3: tasks whose finishes are being written

-- name: get_rate_limit
-- Serialises the limited claims of one key across nodes for the rest of the transaction.
SELECT tat FROM rate_limits WHERE key = $1 FOR UPDATE;

-- name: set_rate_limit
INSERT INTO rate_limits (key, tat) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET tat = excluded.tat;

-- name: put_quota
INSERT INTO quotas (tenant_id, config) VALUES ($1, $2)
ON CONFLICT (tenant_id) DO UPDATE SET config = excluded.config;

-- name: get_quota
SELECT config FROM quotas WHERE tenant_id = $1;


-- name: list_quotas
-- Every tenant's quotas: few rows (only tenants an admin gave quotas), read at start.
SELECT tenant_id, config FROM quotas;
-- name: count_queued
-- Waiting tasks of a tenant, each state through its partial index.
SELECT (SELECT count(*) FROM tasks WHERE tenant_id = $1 AND state = 'ready')
     + (SELECT count(*) FROM tasks WHERE tenant_id = $1 AND state = 'paused')
     + (SELECT count(*) FROM tasks WHERE state = 'scheduled' AND tenant_id = $1);

-- name: ready_backlog
-- Ready tasks per partition, through a partial index: read once a second for placement
-- (the less backlogged partition) and backpressure (the total).
SELECT part, count(*) FROM tasks WHERE state = 'ready' GROUP BY part;

-- name: tenant_backlog
-- A tenant's ready tasks per partition: is a heavy tenant hot (ALGORITHMS.md §3.4)?
SELECT part, count(*) FROM tasks WHERE tenant_id = $1 AND state = 'ready' GROUP BY part;

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
          stag;

-- name: list_leases
-- Unexpired leases whose names start with $1 (node heartbeats, partition owners), on the
-- database's clock as in acquire_lease.
SELECT name, holder, until FROM leases
WHERE left(name, length($1)) = $1 AND until >= extract(epoch FROM clock_timestamp())::float8;

-- name: acquire_leases
-- acquire_lease for many names at once ($1, sorted, so two nodes lock rows in one order);
-- $2 holder, $3 ttl_s; returns the names granted.
INSERT INTO leases (name, holder, until)
SELECT n, $2, extract(epoch FROM clock_timestamp())::float8 + $3 FROM unnest($1::text[]) AS n
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE leases.holder = excluded.holder
   OR leases.until < extract(epoch FROM clock_timestamp())::float8
RETURNING name;

-- name: release_lease
DELETE FROM leases WHERE name = $1 AND holder = $2;

-- name: record_audit
-- One array per column.
INSERT INTO audit (id, tenant_id, actor, action, selector, count, at, detail)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::bigint[], $7::float8[], $8::text[]);

-- name: list_audit
-- A tenant's entries, newest first (keyset on the time-ordered id), of one action if given.
-- $1 tenant_id, $2 before, $3 action (NULL: all), $4 limit
SELECT id, tenant_id, actor, action, selector, count, at, detail FROM audit
WHERE tenant_id = $1 AND id < $2 AND ($3::text IS NULL OR action = $3)
ORDER BY id DESC LIMIT $4;

-- name: list_all_audit
-- Every tenant's entries and the cluster-wide ones (the admin's view), newest first.
-- $1 before, $2 action (NULL: all), $3 limit
SELECT id, tenant_id, actor, action, selector, count, at, detail FROM audit
WHERE id < $1 AND ($2::text IS NULL OR action = $2)
ORDER BY id DESC LIMIT $3;

-- name: purge_audit
-- Retention: the oldest entries first, through the index on `at`; returns how many.
WITH gone AS (
    DELETE FROM audit
    WHERE id IN (SELECT id FROM audit WHERE at < $1 ORDER BY at LIMIT $2)
    RETURNING 1)
SELECT count(*) FROM gone;
