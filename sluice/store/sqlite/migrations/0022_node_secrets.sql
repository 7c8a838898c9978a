-- Secrets every node of a cluster shares and none is configured with, made once by the
-- first node that needs one: the console's session signing key (dashboard/session.py).
-- Derived from the admin key instead, a tenant's own cookie let it test guesses of the
-- admin key offline.
CREATE TABLE node_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at REAL NOT NULL
);
