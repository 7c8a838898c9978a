-- Cron schedules: the config (JSON ScheduleSpec) and the state of its firing. A fire
-- advances last_fire_at with a compare-and-set in the transaction that inserts its task,
-- so a fire time creates one task even if two timer leaders overlap.
CREATE TABLE schedules (
    tenant_id text NOT NULL,
    name text NOT NULL,
    config bytea NOT NULL,
    paused integer NOT NULL DEFAULT 0,
    created_at double precision NOT NULL,
    last_fire_at double precision NOT NULL,
    next_fire_at double precision,
    fired integer NOT NULL DEFAULT 0,
    skipped integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX schedules_due ON schedules(next_fire_at) WHERE paused = 0;
