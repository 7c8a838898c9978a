-- Shared worker pools claim across tenants in fair order (start tags, policy/fairness.py).
CREATE INDEX tasks_ready_shared ON tasks (priority DESC, stag, id) WHERE state = 'ready';
