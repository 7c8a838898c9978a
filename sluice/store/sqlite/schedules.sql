-- SQLite. Cron schedules and their firing state.

-- name: put_schedule
-- Create, or replace the config of, a schedule; a replaced one keeps its firing state, so
-- a fire time already run or skipped never fires again.
INSERT INTO schedules (tenant_id, name, config, created_at, last_fire_at, next_fire_at)
VALUES (:tenant_id, :name, :config, :now, :now, :next_fire_at)
ON CONFLICT (tenant_id, name) DO UPDATE
SET config = excluded.config, next_fire_at = :replaced_next_fire_at,
    last_fire_at = max(last_fire_at, :replaced_last_fire_at);

-- name: list_schedules
SELECT tenant_id, name, config, paused, created_at, last_fire_at, next_fire_at, fired, skipped
FROM schedules WHERE tenant_id = :tenant_id AND (:name IS NULL OR name = :name) ORDER BY name;

-- name: delete_schedule
DELETE FROM schedules WHERE tenant_id = :tenant_id AND name = :name RETURNING name;

-- name: pause_schedule
-- Pausing keeps the firing state; resuming starts after now (fires missed while paused
-- are not run) with the next fire time the caller computed.
UPDATE schedules
SET paused = :paused, last_fire_at = max(last_fire_at, :now), next_fire_at = :next_fire_at
WHERE tenant_id = :tenant_id AND name = :name
RETURNING name;

-- name: due_schedules
SELECT tenant_id, name, config, paused, created_at, last_fire_at, next_fire_at, fired, skipped
FROM schedules WHERE paused = 0 AND next_fire_at <= :now ORDER BY next_fire_at LIMIT :limit;

-- name: advance_schedule
-- Compare-and-set: only the node that saw last_fire_at = :last_before moves it on.
UPDATE schedules
SET last_fire_at = :last_after, next_fire_at = :next_fire_at, fired = fired + :fired,
    skipped = skipped + :skipped
WHERE tenant_id = :tenant_id AND name = :name AND last_fire_at = :last_before AND paused = 0
RETURNING name;
