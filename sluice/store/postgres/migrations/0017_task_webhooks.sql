-- Issue 19, what was left: every try of a delivery kept (a JSON array of the last ones,
-- bounded by the notifier), per-task webhooks (a JSON array on the task, NULL for the
-- tasks that have none: they cost nothing), and each tenant's signing secrets for them.
ALTER TABLE notifications ADD COLUMN log text;
ALTER TABLE tasks ADD COLUMN webhooks text;
CREATE TABLE webhook_secrets (
    tenant_id text PRIMARY KEY,
    secrets text NOT NULL,  -- JSON array: the newest first, the one before it while rotating
    rotated_at double precision NOT NULL
);
