-- Pause rules: while one matches a task that is waiting, the task is held (state
-- 'paused', out of the ready index) until the rule is lifted.
CREATE TABLE pauses (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    selector TEXT NOT NULL,             -- JSON Selector: function, tags, priority range
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Held tasks, per tenant in fair order, for the release when a pause is lifted.
CREATE INDEX tasks_paused ON tasks(tenant_id, priority DESC, stag, id) WHERE state = 'paused';
