-- Issue 19, what was left: every try of a delivery kept (a JSON array of the last ones,
-- bounded by the notifier), per-task webhooks (a JSON array on the task, NULL for the
-- tasks that have none: they cost nothing), and each tenant's signing secrets for them.
ALTER TABLE notifications ADD COLUMN log TEXT;
ALTER TABLE tasks ADD COLUMN webhooks TEXT;
CREATE TABLE webhook_secrets (
    tenant_id TEXT PRIMARY KEY,
    secrets TEXT NOT NULL,  -- JSON array: the newest first, the one before it while rotating
    rotated_at REAL NOT NULL
);
