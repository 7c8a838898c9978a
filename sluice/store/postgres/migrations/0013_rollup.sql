-- Counts for metrics, /v1/stats and the console's charts, so no request counts tasks.
-- Per minute and per (tenant, function): every node adds its own deltas (additive upsert).
CREATE TABLE rollup (
    tenant_id text NOT NULL,
    function text NOT NULL,
    minute double precision NOT NULL,   -- the minute's start, epoch seconds
    submitted bigint NOT NULL DEFAULT 0,
    started bigint NOT NULL DEFAULT 0,  -- dispatches (every attempt)
    succeeded bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,   -- attempts that failed and will be retried
    dead bigint NOT NULL DEFAULT 0,
    cancelled bigint NOT NULL DEFAULT 0,
    expired bigint NOT NULL DEFAULT 0,
    waits bigint NOT NULL DEFAULT 0,    -- first attempts started: wait_s is their sum
    wait_s double precision NOT NULL DEFAULT 0,
    runs bigint NOT NULL DEFAULT 0,     -- attempts finished by a worker: run_s is their sum
    run_s double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, function, minute)
);
-- Retention trims by age across tenants.
CREATE INDEX rollup_minute ON rollup(minute);

-- The timers leader's snapshot of waiting tasks (a grouped count every few seconds),
-- replaced whole each time; every node serves its gauges from here.
CREATE TABLE backlog (
    tenant_id text NOT NULL,
    function text NOT NULL,
    state text NOT NULL,                -- ready, scheduled, paused, running, dead, or held:<why>
    tasks bigint NOT NULL,
    oldest double precision,            -- ready: the oldest ready_at
    taken_at double precision NOT NULL,
    PRIMARY KEY (tenant_id, function, state)
);
