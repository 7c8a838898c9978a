-- Listing a tenant's tasks newest first, a page at a time (ids are time-ordered).
CREATE INDEX tasks_tenant ON tasks(tenant_id, id);
