-- Pause rules: while one matches a task that is waiting, the task is held (state
-- 'paused', out of the ready index) until the rule is lifted.
CREATE TABLE pauses (
    tenant_id text NOT NULL,
    id text NOT NULL,
    selector bytea NOT NULL,            -- JSON Selector: function, tags, priority range
    created_at double precision NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX tasks_paused ON tasks(tenant_id, priority DESC, stag, id) WHERE state = 'paused';
