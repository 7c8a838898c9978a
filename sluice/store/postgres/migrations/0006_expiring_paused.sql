-- Held (paused) tasks expire too: the expiry index covers them.
DROP INDEX tasks_expiring;
CREATE INDEX tasks_expiring ON tasks(expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('ready', 'scheduled', 'paused');
