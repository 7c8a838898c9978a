-- SQLite. The outbox of result notifications and the receivers disabled (store/notifications.py).

-- name: insert_notification
-- Written with a task's end; the id names one event of one attempt for one receiver, so
-- a finish written twice (a resend) writes it once.
INSERT INTO notifications (id, tenant_id, task_id, function, event, attempt, url, created_at, next_at)
VALUES (:id, :tenant_id, :task_id, :function, :event, :attempt, :url, :now, :now)
ON CONFLICT (id) DO NOTHING;

-- name: notified_tasks
-- The function, attempt and own webhooks of tasks a cancel, an expiry or the reaper
-- just ended: all of them when some function has receivers (:all), else only those
-- with webhooks of their own.
SELECT tenant_id, id, function, attempt, webhooks FROM tasks
WHERE id IN (SELECT value FROM json_each(:ids)) AND (:all OR webhooks IS NOT NULL);

-- name: due_notifications
-- Due rows whose receiver is not disabled, each only once every earlier row of its task
-- for the same receiver is settled: a task's notifications go out in order.
SELECT id, tenant_id, task_id, function, event, attempt, url, created_at, state, tries,
       next_at, answered_at, status, answer, seq, log
FROM notifications n
WHERE next_at IS NOT NULL AND next_at <= :now
  AND NOT EXISTS (SELECT 1 FROM notifications e
                  WHERE e.tenant_id = n.tenant_id AND e.task_id = n.task_id
                    AND e.url = n.url AND e.seq < n.seq AND e.next_at IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM webhook_endpoints w
                  WHERE w.tenant_id = n.tenant_id AND w.url = n.url
                    AND w.disabled_at IS NOT NULL)
ORDER BY next_at, seq
LIMIT :limit;

-- name: settle_notification
-- One try's outcome; fenced on the tries it was sent after, so only one sender counts.
UPDATE notifications
SET state = :state, tries = :tries + 1, next_at = :next_at, answered_at = :now,
    status = :status, answer = :answer, log = :log
WHERE id = :id AND tries = :tries;

-- name: list_notifications
SELECT id, tenant_id, task_id, function, event, attempt, url, created_at, state, tries,
       next_at, answered_at, status, answer, seq, log
FROM notifications WHERE tenant_id = :tenant_id AND task_id = :task_id ORDER BY seq;

-- name: delete_task_notifications
DELETE FROM notifications WHERE tenant_id = :tenant_id AND task_id = :id;

-- name: disable_endpoint
INSERT INTO webhook_endpoints (tenant_id, url, disabled_at, reason)
VALUES (:tenant_id, :url, :now, :reason)
ON CONFLICT (tenant_id, url) DO UPDATE SET disabled_at = excluded.disabled_at,
    reason = excluded.reason;

-- name: enable_endpoint
UPDATE webhook_endpoints SET disabled_at = NULL, reason = :reason
WHERE tenant_id = :tenant_id AND url = :url AND disabled_at IS NOT NULL;

-- name: resume_notifications
-- A re-enabled receiver: what waited, and what failed for good while it failed, goes again.
UPDATE notifications SET state = 'pending', next_at = :now
WHERE tenant_id = :tenant_id AND url = :url AND state IN ('pending', 'failed');

-- name: list_endpoints
SELECT tenant_id, url, disabled_at, reason FROM webhook_endpoints
WHERE tenant_id = :tenant_id ORDER BY url;

-- name: get_webhook_secrets
SELECT secrets, rotated_at FROM webhook_secrets WHERE tenant_id = :tenant_id;

-- name: set_webhook_secrets
INSERT INTO webhook_secrets (tenant_id, secrets, rotated_at) VALUES (:tenant_id, :secrets, :now)
ON CONFLICT (tenant_id) DO UPDATE SET secrets = excluded.secrets, rotated_at = excluded.rotated_at;

-- name: retrying_counts
-- Each receiver's deliveries being retried (pending after a failed try): the unsettled
-- rows only, through the partial index of due rows.
SELECT url, count(*) FROM notifications
WHERE next_at IS NOT NULL AND tenant_id = :tenant_id AND tries > 0
GROUP BY url;
