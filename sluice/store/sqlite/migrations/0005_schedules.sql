-- Cron schedules: the config (JSON ScheduleSpec) and the state of its firing. A fire
-- advances last_fire_at with a compare-and-set in the transaction that inserts its task,
-- so a fire time creates one task even if two timer leaders overlap.
CREATE TABLE schedules (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    last_fire_at REAL NOT NULL,         -- every fire time up to here was run or skipped
    next_fire_at REAL,                  -- NULL: never fires again
    fired INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX schedules_due ON schedules(next_fire_at) WHERE paused = 0;
