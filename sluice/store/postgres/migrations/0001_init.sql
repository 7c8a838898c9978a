-- The PostgreSQL schema: the same tables and columns as the SQLite backend, so the two
-- dialects answer the contract suite alike. Times are epoch seconds (double precision)
-- passed in by the caller, never now(), so a fake clock reaches SQL.
CREATE TABLE tenants (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created_at double precision NOT NULL
);

CREATE TABLE api_keys (
    key_hash text PRIMARY KEY,          -- sha256 of the key; the key itself is never stored
    tenant_id text NOT NULL REFERENCES tenants(id),
    prefix text NOT NULL,
    created_at double precision NOT NULL,
    revoked_at double precision
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE functions (
    tenant_id text NOT NULL,
    name text NOT NULL,
    config bytea NOT NULL,              -- JSON FunctionConfig
    updated_at double precision NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE tasks (
    id text PRIMARY KEY,                -- UUIDv7: time-ordered
    tenant_id text NOT NULL,
    function text NOT NULL,
    payload bytea NOT NULL,             -- JSON {"args": [...], "kwargs": {...}}
    state text NOT NULL,
    priority smallint NOT NULL,
    stag double precision NOT NULL,     -- fair-order tag within a priority level
    key text,
    tags text,                          -- JSON array
    attempt integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    timeout_s double precision,
    run_at double precision NOT NULL,
    expires_at double precision,
    created_at double precision NOT NULL,
    ready_at double precision,
    dispatched_at double precision,
    lease_owner text,
    lease_until double precision,
    finished_at double precision,
    result bytea,
    error text,
    throttles integer NOT NULL DEFAULT 0,
    series_at double precision,         -- a retry by hand starts a new attempt series
    retry bytea                         -- JSON RetryPolicy overriding the function's
) WITH (
    -- Every transition rewrites a row and its partial-index entries: vacuum early and
    -- often so the hot ready index stays small (ALGORITHMS.md §6.1 "Bloat control").
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 1,
    autovacuum_vacuum_cost_limit = 2000,
    autovacuum_analyze_scale_factor = 0.05
);
-- The hot ready set: only ready rows are in this index, so finished tasks never slow a claim.
CREATE INDEX tasks_ready ON tasks(tenant_id, priority DESC, stag, id) WHERE state = 'ready';
-- Timer indexes span tenants (the timers serve all of them); partial, so they hold only
-- waiting or running rows.
CREATE INDEX tasks_scheduled ON tasks(run_at) WHERE state = 'scheduled';
CREATE INDEX tasks_leased ON tasks(lease_until) WHERE state = 'running';
CREATE INDEX tasks_expiring ON tasks(expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('ready', 'scheduled');
CREATE UNIQUE INDEX tasks_key ON tasks(tenant_id, key) WHERE key IS NOT NULL;
CREATE INDEX tasks_dead ON tasks(tenant_id, id) WHERE state = 'dead';
CREATE INDEX tasks_tenant ON tasks(tenant_id, id);

CREATE TABLE attempts (
    tenant_id text NOT NULL,
    task_id text NOT NULL,
    attempt integer NOT NULL,
    worker text,
    dispatched_at double precision,
    started_at double precision,
    finished_at double precision,
    outcome text NOT NULL,
    error_type text,
    error_message text,
    traceback text,
    PRIMARY KEY (task_id, attempt)
);
CREATE INDEX attempts_tenant ON attempts(tenant_id, task_id);

CREATE TABLE events (
    tenant_id text NOT NULL,
    task_id text NOT NULL,
    at double precision NOT NULL,
    kind text NOT NULL,
    detail text
);
CREATE INDEX events_task ON events(tenant_id, task_id, at);

-- Named leases with an expiry: the cluster's timer leader, partition owners.
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    until double precision NOT NULL
);
