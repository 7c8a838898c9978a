-- The audit log: one row per administrative or bulk action.
CREATE TABLE audit (
    id text PRIMARY KEY,                -- time-ordered, like task ids: the listing's order
    tenant_id text,                     -- the tenant acted on; NULL: cluster-wide (a new tenant)
    actor text NOT NULL,                -- 'admin', or 'key:' and the id of the tenant key used
    action text NOT NULL,               -- 'tasks.cancel', 'pause.create', 'key.revoke', ...
    selector text,                      -- JSON: the selector or ids acted on
    count bigint,                       -- how many it touched
    at double precision NOT NULL,
    detail text
);
-- A tenant's entries, newest first; the admin's listing of all walks the primary key.
CREATE INDEX audit_tenant ON audit(tenant_id, id);
-- Retention deletes by age across tenants, like the timers' indexes on tasks.
CREATE INDEX audit_at ON audit(at);
