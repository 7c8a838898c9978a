-- GCRA state per rate-limited key (a tenant's function): its theoretical arrival time.
CREATE TABLE rate_limits (
    key text PRIMARY KEY,
    tat double precision NOT NULL
);
