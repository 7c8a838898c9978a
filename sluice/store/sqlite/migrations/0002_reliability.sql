-- Throttled attempts (flow control) do not use up max_attempts; they are counted apart.
ALTER TABLE tasks ADD COLUMN throttles INTEGER NOT NULL DEFAULT 0;
-- A retry by hand starts a new attempt series; its retry window counts from then.
ALTER TABLE tasks ADD COLUMN series_at REAL;
-- Dead letters, per tenant, in id (time) order.
CREATE INDEX tasks_dead ON tasks(tenant_id, id) WHERE state = 'dead';
-- A task's own retry policy (JSON RetryPolicy), when it overrides its function's.
ALTER TABLE tasks ADD COLUMN retry TEXT;
