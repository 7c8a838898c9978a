-- Named queries of the SQLite backend. Every query that compares with "now" takes it
-- as :now so a fake clock reaches the database; named leases are the exception, judged
-- on the database's own clock (store/base.py says why). Writes run inside the writer
-- thread's BEGIN IMMEDIATE transactions (see sqlite.py); SQLite serialises writers, so
-- the claim needs no SKIP LOCKED.

-- name: create_tenant
INSERT INTO tenants (id, name, created_at) VALUES (:id, :name, :now);

-- name: get_tenant_by_name
SELECT id, name, created_at FROM tenants WHERE name = :name;

-- name: get_tenant
SELECT id, name, created_at FROM tenants WHERE id = :id;

-- name: create_api_key
INSERT INTO api_keys (key_hash, tenant_id, prefix, created_at) VALUES (:key_hash, :tenant_id, :prefix, :now);

-- name: find_api_key
SELECT tenant_id FROM api_keys WHERE key_hash = :key_hash AND revoked_at IS NULL;

-- name: upsert_function
INSERT INTO functions (tenant_id, name, config, updated_at) VALUES (:tenant_id, :name, :config, :now)
ON CONFLICT (tenant_id, name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at;

-- name: list_functions
SELECT name, config FROM functions WHERE tenant_id = :tenant_id ORDER BY name;

-- name: insert_task
-- positional: id, tenant_id, function, payload, state, priority, stag, key, tags,
--             max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
--             part
INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_keyed_task
-- Same columns as insert_task; a key already held by the tenant inserts nothing.
INSERT INTO tasks (id, tenant_id, function, payload, state, priority, stag, key, tags,
                   max_attempts, timeout_s, run_at, expires_at, created_at, ready_at, retry,
                   part)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, key) WHERE key IS NOT NULL DO NOTHING
RETURNING id;

-- name: get_task_by_key
SELECT id, state, run_at FROM tasks WHERE tenant_id = ? AND key = ?;

-- name: get_task
SELECT id, tenant_id, function, payload, state, priority, key, tags, attempt, max_attempts,
       timeout_s, run_at, expires_at, created_at, ready_at, dispatched_at, lease_owner,
       lease_until, finished_at, result, error, throttles, series_at, retry, part
FROM tasks WHERE tenant_id = :tenant_id AND id = :id;

-- name: get_task_states
SELECT id, state FROM tasks
WHERE tenant_id = :tenant_id AND id IN (SELECT value FROM json_each(:ids));

-- name: list_attempts
SELECT task_id, attempt, worker, dispatched_at, started_at, finished_at, outcome,
       error_type, error_message, traceback
FROM attempts WHERE tenant_id = :tenant_id AND task_id = :task_id ORDER BY attempt;

-- name: list_events
SELECT task_id, at, kind, detail FROM events
WHERE tenant_id = :tenant_id AND task_id = :task_id ORDER BY at;

-- name: claim_tasks
-- The hot path: take up to :limit ready tasks of the worker's functions in fair order
-- (priority first, then start tag) and lease them to the worker, in one statement.
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, dispatched_at = :now
WHERE id IN (
    SELECT id FROM tasks
    WHERE tenant_id = :tenant_id AND state = 'ready'
      AND function IN (SELECT value FROM json_each(:functions))
      AND (:parts IS NULL OR part IN (SELECT value FROM json_each(:parts)))  -- this node's
      AND (expires_at IS NULL OR expires_at > :now OR attempt > 0)
    ORDER BY priority DESC, stag, id
    LIMIT :limit)
RETURNING tenant_id, id, function, payload, attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag;

-- name: claim_level
-- The same claim from one priority level only: a level's floor share (policy/priority.py).
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, dispatched_at = :now
WHERE id IN (
    SELECT id FROM tasks
    WHERE tenant_id = :tenant_id AND state = 'ready' AND priority = :priority
      AND function IN (SELECT value FROM json_each(:functions))
      AND (:parts IS NULL OR part IN (SELECT value FROM json_each(:parts)))  -- this node's
      AND (expires_at IS NULL OR expires_at > :now OR attempt > 0)
    ORDER BY stag, id
    LIMIT :limit)
RETURNING tenant_id, id, function, payload, attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag;

-- name: claim_shared
-- A shared pool's claim: the same, across every tenant, in fair (start tag) order.
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, dispatched_at = :now
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
RETURNING tenant_id, id, function, payload, attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag;

-- name: claim_shared_level
-- A shared pool's claim from one priority level.
UPDATE tasks
SET state = 'running', attempt = attempt + 1, lease_owner = :worker,
    lease_until = :lease_until, dispatched_at = :now
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
RETURNING tenant_id, id, function, payload, attempt, max_attempts, timeout_s, priority,
          COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags, stag;

-- name: finish_task
-- Fenced: only the current attempt, still running and leased to this worker, may finish.
UPDATE tasks
SET state = :next_state, finished_at = :finished_at, result = :result, error = :error,
    run_at = COALESCE(:run_at, run_at), ready_at = COALESCE(:ready_at, ready_at),
    throttles = throttles + :throttled,
    lease_owner = NULL, lease_until = NULL
WHERE id = :task_id AND tenant_id = :tenant_id AND attempt = :attempt
  AND state = 'running' AND lease_owner = :worker;

-- name: insert_attempt
INSERT INTO attempts (tenant_id, task_id, attempt, worker, dispatched_at, started_at,
                      finished_at, outcome, error_type, error_message, traceback)
VALUES (:tenant_id, :task_id, :attempt, :worker, :dispatched_at, :started_at,
        :finished_at, :outcome, :error_type, :error_message, :traceback)
ON CONFLICT (task_id, attempt) DO NOTHING;

-- name: get_attempt_worker
-- Who finished this attempt; a "lost" row means the reaper ended it, not the worker.
SELECT worker FROM attempts
WHERE tenant_id = :tenant_id AND task_id = :task_id AND attempt = :attempt AND outcome <> 'lost';

-- name: insert_event
INSERT INTO events (tenant_id, task_id, at, kind, detail) VALUES (:tenant_id, :task_id, :now, :kind, :detail);

-- name: extend_leases
-- A shared pool's renewal names no tenant ('*'): its tasks are anyone's.
UPDATE tasks SET lease_until = :lease_until
WHERE (tenant_id = :tenant_id OR :tenant_id = '*') AND lease_owner = :worker
  AND state = 'running' AND id IN (SELECT value FROM json_each(:ids));

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

-- name: retag
-- Fair start tags for tasks that just became ready (policy/fairness.py).
UPDATE tasks SET stag = :stag WHERE id = :id AND state = 'ready';

-- name: expired_leases
SELECT tenant_id, id, attempt, max_attempts, lease_owner, dispatched_at FROM tasks
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

-- name: expire_tasks
UPDATE tasks SET state = 'expired', finished_at = :now
WHERE id IN (
    SELECT id FROM tasks
    WHERE expires_at IS NOT NULL AND expires_at <= :now AND state IN ('ready', 'scheduled', 'paused')
      AND attempt = 0  -- "not started by then": a task that ran once retries past its ttl
    LIMIT :limit)
RETURNING tenant_id, id;

-- name: cancellable_tasks
SELECT id, state, attempt, lease_owner, dispatched_at FROM tasks
WHERE tenant_id = :tenant_id AND id IN (SELECT value FROM json_each(:ids))
  AND state IN ('scheduled', 'ready', 'paused', 'running');

-- name: cancel_task
UPDATE tasks SET state = 'cancelled', finished_at = :now, lease_owner = NULL, lease_until = NULL
WHERE tenant_id = :tenant_id AND id = :id AND state IN ('scheduled', 'ready', 'paused', 'running');

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

-- name: task_tenant
-- Whose task this is: for a shared pool's result that this node did not deliver.
SELECT tenant_id FROM tasks WHERE id = :id;

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

-- name: list_dead
SELECT id, function, attempt, error, finished_at FROM tasks
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

-- name: retained_past
-- Ended tasks whose retention ran out. Ids are time-ordered, so the scan walks the
-- primary key from the oldest and stops at the first id created after the cutoff.
SELECT tenant_id, id FROM tasks
WHERE id < :id_before AND state IN ('succeeded', 'dead', 'cancelled', 'expired')
  AND finished_at < :before
ORDER BY id LIMIT :limit;

-- name: delete_task
DELETE FROM tasks WHERE tenant_id = :tenant_id AND id = :id;

-- name: delete_attempts
DELETE FROM attempts WHERE task_id = :id AND tenant_id = :tenant_id;

-- name: delete_events
DELETE FROM events WHERE tenant_id = :tenant_id AND task_id = :id;

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

-- name: deletable_tasks
-- Running tasks are not deleted: cancel them first.
SELECT id FROM tasks
WHERE tenant_id = :tenant_id AND id IN (SELECT value FROM json_each(:ids)) AND state <> 'running';

-- name: list_tenants
SELECT id, name, created_at FROM tenants ORDER BY name;

-- name: list_api_keys
SELECT substr(key_hash, 1, 16), prefix, created_at, revoked_at FROM api_keys
WHERE tenant_id = :tenant_id ORDER BY created_at;

-- name: revoke_api_key
-- A key is named by the first 16 hex digits of its hash (its id); the key itself is unknown.
UPDATE api_keys SET revoked_at = :now
WHERE tenant_id = :tenant_id AND substr(key_hash, 1, 16) = :key_id AND revoked_at IS NULL
RETURNING key_hash;

-- name: acquire_lease
-- Take or keep a named lease: granted when free, expired, or already ours. Set and judged
-- on the database's clock: julianday('now') as epoch seconds (3.40 has no
-- unixepoch('subsec')); 'now' keeps one value within a statement's step.
INSERT INTO leases (name, holder, until)
VALUES (:name, :holder, (julianday('now') - 2440587.5) * 86400.0 + :ttl_s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE leases.holder = excluded.holder
   OR leases.until < (julianday('now') - 2440587.5) * 86400.0
RETURNING holder;

-- name: put_schedule
-- Create, or replace the config of, a schedule; a replaced one keeps its firing state, so
-- a fire time already run or skipped never fires again.
INSERT INTO schedules (tenant_id, name, config, created_at, last_fire_at, next_fire_at)
VALUES (:tenant_id, :name, :config, :now, :now, :next_fire_at)
ON CONFLICT (tenant_id, name) DO UPDATE
SET config = excluded.config, next_fire_at = :replaced_next_fire_at,
    last_fire_at = max(last_fire_at, :replaced_last_fire_at);

-- name: list_schedules
SELECT tenant_id, name, config, paused, created_at, last_fire_at, next_fire_at, fired, skipped
FROM schedules WHERE tenant_id = :tenant_id AND (:name IS NULL OR name = :name) ORDER BY name;

-- name: delete_schedule
DELETE FROM schedules WHERE tenant_id = :tenant_id AND name = :name RETURNING name;

-- name: pause_schedule
-- Pausing keeps the firing state; resuming starts after now (fires missed while paused
-- are not run) with the next fire time the caller computed.
UPDATE schedules
SET paused = :paused, last_fire_at = max(last_fire_at, :now), next_fire_at = :next_fire_at
WHERE tenant_id = :tenant_id AND name = :name
RETURNING name;

-- name: due_schedules
SELECT tenant_id, name, config, paused, created_at, last_fire_at, next_fire_at, fired, skipped
FROM schedules WHERE paused = 0 AND next_fire_at <= :now ORDER BY next_fire_at LIMIT :limit;

-- name: advance_schedule
-- Compare-and-set: only the node that saw last_fire_at = :last_before moves it on.
UPDATE schedules
SET last_fire_at = :last_after, next_fire_at = :next_fire_at, fired = fired + :fired,
    skipped = skipped + :skipped
WHERE tenant_id = :tenant_id AND name = :name AND last_fire_at = :last_before AND paused = 0
RETURNING name;

-- name: insert_pause
INSERT INTO pauses (tenant_id, id, selector, created_at) VALUES (:tenant_id, :id, :selector, :now);

-- name: list_pauses
-- Every tenant's when :tenant_id is NULL (a node loading its cache after a hint).
SELECT tenant_id, id, selector, created_at FROM pauses
WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id) ORDER BY tenant_id, created_at, id;

-- name: delete_pause
DELETE FROM pauses WHERE tenant_id = :tenant_id AND id = :id RETURNING selector;

-- name: hold_tasks
-- Hold waiting tasks under a pause; running ones are left to finish.
UPDATE tasks SET state = 'paused'
WHERE tenant_id = :tenant_id AND id IN (SELECT value FROM json_each(:ids))
  AND state IN ('ready', 'scheduled')
RETURNING id;

-- name: unhold_tasks
-- Lift the hold: due tasks are ready again with their start tags (their fair place),
-- the others scheduled for their time.
UPDATE tasks
SET state = CASE WHEN run_at > :now THEN 'scheduled' ELSE 'ready' END,
    ready_at = CASE WHEN run_at > :now THEN ready_at ELSE :now END
WHERE tenant_id = :tenant_id AND id IN (SELECT value FROM json_each(:ids)) AND state = 'paused'
RETURNING id, state;

-- name: put_subscription
INSERT INTO subscriptions (tenant_id, name, topic, config, created_at)
VALUES (:tenant_id, :name, :topic, :config, :now)
ON CONFLICT (tenant_id, name) DO UPDATE SET topic = excluded.topic, config = excluded.config;

-- name: list_subscriptions
SELECT name, topic, config, created_at FROM subscriptions
WHERE tenant_id = :tenant_id AND (:topic IS NULL OR topic = :topic) ORDER BY name;

-- name: delete_subscription
DELETE FROM subscriptions WHERE tenant_id = :tenant_id AND name = :name RETURNING name;

-- name: count_running
-- The running set is small (at most the worker slots): walk its partial index.
SELECT count(*) FROM tasks INDEXED BY tasks_leased
WHERE state = 'running' AND tenant_id = :tenant_id
  AND (:function IS NULL OR function = :function)  -- NULL: every function of the tenant
  AND id NOT IN (SELECT value FROM json_each(:settling));  -- finishes being written

-- name: get_rate_limit
SELECT tat FROM rate_limits WHERE key = :key;

-- name: set_rate_limit
INSERT INTO rate_limits (key, tat) VALUES (:key, :tat)
ON CONFLICT (key) DO UPDATE SET tat = excluded.tat;

-- name: put_quota
INSERT INTO quotas (tenant_id, config) VALUES (:tenant_id, :config)
ON CONFLICT (tenant_id) DO UPDATE SET config = excluded.config;

-- name: get_quota
SELECT config FROM quotas WHERE tenant_id = :tenant_id;

-- name: list_quotas
-- Every tenant's quotas: few rows (only tenants an admin gave quotas), read at start.
SELECT tenant_id, config FROM quotas;

-- name: count_queued
-- Waiting tasks of a tenant, each state through its partial index.
SELECT (SELECT count(*) FROM tasks WHERE tenant_id = :tenant_id AND state = 'ready')
     + (SELECT count(*) FROM tasks WHERE tenant_id = :tenant_id AND state = 'paused')
     + (SELECT count(*) FROM tasks INDEXED BY tasks_scheduled
        WHERE state = 'scheduled' AND tenant_id = :tenant_id);

-- name: ready_backlog
-- Ready tasks per partition, through the partial index of the shared claim: read once a
-- second for placement (the less backlogged partition) and backpressure (the total).
SELECT part, count(*) FROM tasks INDEXED BY tasks_ready_shared WHERE state = 'ready'
GROUP BY part;

-- name: tenant_backlog
-- A tenant's ready tasks per partition: is a heavy tenant hot (ALGORITHMS.md §3.4)?
SELECT part, count(*) FROM tasks WHERE tenant_id = :tenant_id AND state = 'ready'
GROUP BY part;

-- name: get_claimed
-- Tasks claimed for a worker by the node that holds their partition, to deliver here.
SELECT tenant_id, id, function, payload, attempt, max_attempts, timeout_s, priority,
       COALESCE(series_at, created_at), dispatched_at, lease_until, throttles, retry, tags,
       stag
FROM tasks
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running'
  AND lease_owner = :worker AND (:tenant_id = '*' OR tenant_id = :tenant_id);

-- name: list_leases
-- Unexpired leases whose names start with :prefix (node heartbeats, partition owners),
-- on the database's clock as in acquire_lease.
SELECT name, holder, until FROM leases
WHERE substr(name, 1, length(:prefix)) = :prefix
  AND until >= (julianday('now') - 2440587.5) * 86400.0;

-- name: acquire_leases
-- acquire_lease, run once per name within one write (SQLite has no unnest).
INSERT INTO leases (name, holder, until)
VALUES (:name, :holder, (julianday('now') - 2440587.5) * 86400.0 + :ttl_s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE leases.holder = excluded.holder
   OR leases.until < (julianday('now') - 2440587.5) * 86400.0
RETURNING holder;

-- name: release_lease
DELETE FROM leases WHERE name = :name AND holder = :holder;

-- name: record_audit
INSERT INTO audit (id, tenant_id, actor, action, selector, count, at, detail)
VALUES (:id, :tenant_id, :actor, :action, :selector, :count, :at, :detail);

-- name: list_audit
-- A tenant's entries, newest first (keyset on the time-ordered id), of one action if given.
SELECT id, tenant_id, actor, action, selector, count, at, detail FROM audit
WHERE tenant_id = :tenant_id AND id < :before AND (:action IS NULL OR action = :action)
ORDER BY id DESC LIMIT :limit;

-- name: list_all_audit
-- Every tenant's entries and the cluster-wide ones (the admin's view), newest first.
SELECT id, tenant_id, actor, action, selector, count, at, detail FROM audit
WHERE id < :before AND (:action IS NULL OR action = :action)
ORDER BY id DESC LIMIT :limit;

-- name: purge_audit
-- Retention: the oldest entries first, through the index on `at`.
DELETE FROM audit
WHERE id IN (SELECT id FROM audit WHERE at < :before ORDER BY at LIMIT :limit);
