-- SQLite. Pause rules and the tasks they hold.

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
