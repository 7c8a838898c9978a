-- SQLite. A task's history: its rarer transitions (cancelled, retried by hand, expired,
-- lease lost, handed back, a stale result), one row each. The table keeps its first name,
-- `events`: renaming it would break a node of the previous version still running beside
-- the new ones during a rolling upgrade.

-- name: list_history
SELECT task_id, at, kind, detail FROM events
WHERE tenant_id = :tenant_id AND task_id = :task_id ORDER BY at;

-- name: record_history
INSERT INTO events (tenant_id, task_id, at, kind, detail) VALUES (:tenant_id, :task_id, :now, :kind, :detail);

-- name: delete_history
DELETE FROM events WHERE tenant_id = :tenant_id AND task_id = :id;
