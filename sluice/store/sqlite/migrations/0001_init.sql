-- Tenants, their API keys and their functions.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);

CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY,          -- sha256 of the key; the key itself is never stored
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    prefix TEXT NOT NULL,               -- first characters, to recognise a key in listings
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

CREATE TABLE functions (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,               -- JSON FunctionConfig
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    function TEXT NOT NULL,
    payload TEXT NOT NULL,              -- JSON {"args": [...], "kwargs": {...}}
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    stag REAL NOT NULL,                 -- fair-order tag within a priority level
    key TEXT,
    tags TEXT,                          -- JSON array
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    timeout_s REAL,
    run_at REAL NOT NULL,
    expires_at REAL,
    created_at REAL NOT NULL,
    ready_at REAL,
    dispatched_at REAL,
    lease_owner TEXT,
    lease_until REAL,
    finished_at REAL,
    result TEXT,
    error TEXT
);
-- The hot ready set: only ready rows are in this index, so finished tasks never slow a claim.
CREATE INDEX tasks_ready ON tasks(tenant_id, priority DESC, stag, id) WHERE state = 'ready';
-- Timer indexes span tenants (the promoter and reaper serve all of them); they are partial,
-- so they hold only waiting or running rows.
CREATE INDEX tasks_scheduled ON tasks(run_at) WHERE state = 'scheduled';
CREATE INDEX tasks_leased ON tasks(lease_until) WHERE state = 'running';
CREATE INDEX tasks_expiring ON tasks(expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('ready', 'scheduled');
CREATE UNIQUE INDEX tasks_key ON tasks(tenant_id, key) WHERE key IS NOT NULL;

-- One row per finished (or lost) attempt; the timeline reads these.
CREATE TABLE attempts (
    tenant_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    worker TEXT,
    dispatched_at REAL,
    started_at REAL,
    finished_at REAL,
    outcome TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    traceback TEXT,
    PRIMARY KEY (task_id, attempt)
);
CREATE INDEX attempts_tenant ON attempts(tenant_id, task_id);

-- Rarer transitions: expired, lease lost, stale result refused, cancelled, ...
CREATE TABLE events (
    tenant_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX events_task ON events(tenant_id, task_id, at);
