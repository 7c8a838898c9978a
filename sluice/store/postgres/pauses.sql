-- PostgreSQL. Pause rules and the tasks they hold.

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
