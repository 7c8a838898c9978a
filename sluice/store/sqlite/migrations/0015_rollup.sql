-- Counts for metrics, /v1/stats and the console's charts, so no request counts tasks.
-- Per minute and per (tenant, function): every node adds its own deltas (additive upsert).
CREATE TABLE rollup (
    tenant_id TEXT NOT NULL,
    function TEXT NOT NULL,
    minute REAL NOT NULL,               -- the minute's start, epoch seconds
    submitted INTEGER NOT NULL DEFAULT 0,
    started INTEGER NOT NULL DEFAULT 0, -- dispatches (every attempt)
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,  -- attempts that failed and will be retried
    dead INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    expired INTEGER NOT NULL DEFAULT 0,
    waits INTEGER NOT NULL DEFAULT 0,   -- first attempts started: wait_s is their sum
    wait_s REAL NOT NULL DEFAULT 0,
    runs INTEGER NOT NULL DEFAULT 0,    -- attempts finished by a worker: run_s is their sum
    run_s REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, function, minute)
);
-- Retention trims by age across tenants.
CREATE INDEX rollup_minute ON rollup(minute);

-- The timers leader's snapshot of waiting tasks (a grouped count every few seconds),
-- replaced whole each time; every node serves its gauges from here.
CREATE TABLE backlog (
    tenant_id TEXT NOT NULL,
    function TEXT NOT NULL,
    state TEXT NOT NULL,                -- ready, scheduled, paused, running, dead, or held:<why>
    tasks INTEGER NOT NULL,
    oldest REAL,                        -- ready: the oldest ready_at
    taken_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, function, state)
);
