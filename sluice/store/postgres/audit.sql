-- PostgreSQL. The audit log of administrative and bulk actions.

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
