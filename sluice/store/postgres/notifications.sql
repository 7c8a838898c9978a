-- PostgreSQL. The outbox of result notifications and the receivers disabled (store/notifications.py).

-- name: insert_notification
-- Written with a task's end; the id names one event of one attempt for one receiver, so
-- a finish written twice (a resend) writes it once. One array per column.
INSERT INTO notifications (id, tenant_id, task_id, function, event, attempt, url, created_at, next_at)
SELECT id, tenant_id, task_id, function, event, attempt, url, $8, $8
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[])
     WITH ORDINALITY AS r(id, tenant_id, task_id, function, event, attempt, url, n)
ORDER BY n  -- seq in the order given: a task's events in the order they happened
ON CONFLICT (id) DO NOTHING;

-- name: notified_tasks
-- The function, attempt and own webhooks of tasks a cancel, an expiry or the reaper
-- just ended: all of them when some function has receivers ($2), else only those with
-- webhooks of their own.
SELECT tenant_id, id, function, attempt, webhooks FROM tasks
WHERE id = ANY($1::text[]) AND ($2::boolean OR webhooks IS NOT NULL);

-- name: due_notifications
-- Due rows whose receiver is not disabled, each only once every earlier row of its task
-- for the same receiver is settled: a task's notifications go out in order.
SELECT id, tenant_id, task_id, function, event, attempt, url, created_at, state, tries,
       next_at, answered_at, status, answer, seq, log
FROM notifications n
WHERE next_at IS NOT NULL AND next_at <= $1
  AND NOT EXISTS (SELECT 1 FROM notifications e
                  WHERE e.tenant_id = n.tenant_id AND e.task_id = n.task_id
                    AND e.url = n.url AND e.seq < n.seq AND e.next_at IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w
                  WHERE w.tenant_id = n.tenant_id AND w.url = n.url
                    AND w.disabled_at IS NOT NULL)
ORDER BY next_at, seq
LIMIT $2;

-- name: settle_notification
-- One try's outcome; fenced on the tries it was sent after, so only one sender counts.
-- $1 id, $2 tries, $3 state, $4 next_at, $5 now, $6 status, $7 answer, $8 log
UPDATE notifications
SET state = $3, tries = $2 + 1, next_at = $4, answered_at = $5, status = $6, answer = $7,
    log = $8
WHERE id = $1 AND tries = $2;

-- name: list_notifications
SELECT id, tenant_id, task_id, function, event, attempt, url, created_at, state, tries,
       next_at, answered_at, status, answer, seq, log
FROM notifications WHERE tenant_id = $1 AND task_id = $2 ORDER BY seq;

-- name: delete_task_notifications
DELETE FROM notifications WHERE tenant_id = $1 AND task_id = ANY($2::text[]);

-- name: disable_endpoint
INSERT INTO webhook_endpoints (tenant_id, url, disabled_at, reason) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, url) DO UPDATE SET disabled_at = excluded.disabled_at,
    reason = excluded.reason;

-- name: enable_endpoint
UPDATE webhook_endpoints SET disabled_at = NULL, reason = $3
WHERE tenant_id = $1 AND url = $2 AND disabled_at IS NOT NULL;

-- name: resume_notifications
-- A re-enabled receiver: what waited, and what failed for good while it failed, goes again.
UPDATE notifications SET state = 'pending', next_at = $3
WHERE tenant_id = $1 AND url = $2 AND state IN ('pending', 'failed');

-- name: list_endpoints
SELECT tenant_id, url, disabled_at, reason FROM webhook_endpoints
WHERE tenant_id = $1 ORDER BY url;

-- name: get_webhook_secrets
SELECT secrets, rotated_at FROM webhook_secrets WHERE tenant_id = $1;

-- name: set_webhook_secrets
INSERT INTO webhook_secrets (tenant_id, secrets, rotated_at) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id) DO UPDATE SET secrets = excluded.secrets, rotated_at = excluded.rotated_at;

-- name: retrying_counts
-- Each receiver's deliveries being retried (pending after a failed try): the unsettled
-- rows only, through the partial index of due rows.
SELECT url, count(*) FROM notifications
WHERE next_at IS NOT NULL AND tenant_id = $1 AND tries > 0
GROUP BY url;
