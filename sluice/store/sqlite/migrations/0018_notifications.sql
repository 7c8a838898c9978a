-- The outbox of result notifications (issue 19): one row per event of a task per
-- receiver (a webhook's URL, or a destination "function:NAME" / "topic:NAME"), written
-- in the transaction that ends the attempt or the task, so a crash loses none. `id` is
-- the webhook-id (the same on every try); `seq` orders a task's rows; `next_at` is
-- NULL once the row is settled (delivered, failed for good, dropped).
CREATE TABLE notifications (
    seq INTEGER PRIMARY KEY,  -- the rowid: one more than the largest, so in order
    id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    function TEXT NOT NULL,
    event TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    url TEXT NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    tries INTEGER NOT NULL DEFAULT 0,
    next_at REAL,
    answered_at REAL,
    status INTEGER,
    answer TEXT
);
CREATE INDEX notifications_due ON notifications(next_at) WHERE next_at IS NOT NULL;
CREATE INDEX notifications_task ON notifications(tenant_id, task_id, seq);

-- Receivers disabled after failing for long (or answering 410), until re-enabled.
CREATE TABLE webhook_endpoints (
    tenant_id TEXT NOT NULL,
    url TEXT NOT NULL,
    disabled_at REAL,
    reason TEXT,
    PRIMARY KEY (tenant_id, url)
);
