-- The outbox of result notifications (issue 19): one row per event of a task per
-- receiver (a webhook's URL, or a destination "function:NAME" / "topic:NAME"), written
-- in the transaction that ends the attempt or the task, so a crash loses none. `id` is
-- the webhook-id (the same on every try); `seq` orders a task's rows; `next_at` is
-- NULL once the row is settled (delivered, failed for good, dropped).
CREATE TABLE notifications (
    seq bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    tenant_id text NOT NULL,
    task_id text NOT NULL,
    function text NOT NULL,
    event text NOT NULL,
    attempt integer NOT NULL,
    url text NOT NULL,
    created_at double precision NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    tries integer NOT NULL DEFAULT 0,
    next_at double precision,
    answered_at double precision,
    status integer,
    answer text
);
CREATE INDEX notifications_due ON notifications(next_at) WHERE next_at IS NOT NULL;
CREATE INDEX notifications_task ON notifications(tenant_id, task_id, seq);

-- Receivers disabled after failing for long (or answering 410), until re-enabled.
CREATE TABLE webhook_endpoints (
    tenant_id text NOT NULL,
    url text NOT NULL,
    disabled_at double precision,
    reason text,
    PRIMARY KEY (tenant_id, url)
);
