-- PostgreSQL. Cron schedules and their firing state.

-- name: put_schedule
-- Create, or replace the config of, a schedule; a replaced one keeps its firing state, so
-- a fire time already run or skipped never fires again.
-- $1 tenant_id, $2 name, $3 config, $4 now, $5 next_fire_at, $6 next_fire_at if replaced,
-- $7 the replaced schedule's new floor for last_fire_at
INSERT INTO schedules (tenant_id, name, config, created_at, last_fire_at, next_fire_at)
VALUES ($1, $2, $3, $4, $4, $5)
ON CONFLICT (tenant_id, name) DO UPDATE
SET config = excluded.config, next_fire_at = $6,
    last_fire_at = greatest(schedules.last_fire_at, $7);

-- name: list_schedules
SELECT tenant_id, name, config, paused, created_at, last_fire_at, next_fire_at, fired, skipped
FROM schedules WHERE tenant_id = $1 AND ($2::text IS NULL OR name = $2) ORDER BY name;

-- name: delete_schedule
DELETE FROM schedules WHERE tenant_id = $1 AND name = $2 RETURNING name;

-- name: pause_schedule
-- Pausing keeps the firing state; resuming starts after now (fires missed while paused
-- are not run) with the next fire time the caller computed.
-- $1 tenant_id, $2 name, $3 paused, $4 now, $5 next_fire_at
UPDATE schedules
SET paused = $3, last_fire_at = greatest(last_fire_at, $4), next_fire_at = $5
WHERE tenant_id = $1 AND name = $2
RETURNING name;

-- name: due_schedules
SELECT tenant_id, name, config, paused, created_at, last_fire_at, next_fire_at, fired, skipped
FROM schedules WHERE paused = 0 AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2;

-- name: advance_schedule
-- Compare-and-set: only the node that saw last_fire_at = $3 moves it on.
-- $1 tenant_id, $2 name, $3 last_before, $4 last_after, $5 next_fire_at, $6 fired, $7 skipped
UPDATE schedules
SET last_fire_at = $4, next_fire_at = $5, fired = fired + $6, skipped = skipped + $7
WHERE tenant_id = $1 AND name = $2 AND last_fire_at = $3 AND paused = 0
RETURNING name;
