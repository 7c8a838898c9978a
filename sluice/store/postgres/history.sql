-- PostgreSQL. A task's history: its rarer transitions (cancelled, retried by hand, expired,
-- lease lost, handed back, a stale result), one row each. The table keeps its first name,
-- `events`: renaming it would break a node of the previous version still running beside
-- the new ones during a rolling upgrade.

-- name: list_history
SELECT task_id, at, kind, detail FROM events
WHERE tenant_id = $1 AND task_id = $2 ORDER BY at;

-- name: record_history
-- $1 tenants, $2 task ids, $3 now, $4 kinds, $5 details
INSERT INTO events (tenant_id, task_id, at, kind, detail)
SELECT tenant_id, task_id, $3, kind, detail
FROM unnest($1::text[], $2::text[], $4::text[], $5::text[]) AS e(tenant_id, task_id, kind, detail);

-- name: delete_history
DELETE FROM events WHERE tenant_id = $1 AND task_id = ANY($2::text[]);
