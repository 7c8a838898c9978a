-- SQLite. The audit log of administrative and bulk actions.

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
