-- SQLite. Named leases (partition owners, the timers leader), set and judged on the
-- database's own clock, not a `now` parameter: store/base.py says why.

-- name: acquire_lease
-- Take or keep a named lease: granted when free, expired, or already ours. Set and judged
-- on the database's clock: julianday('now') as epoch seconds (3.40 has no
-- unixepoch('subsec')); 'now' keeps one value within a statement's step.
INSERT INTO leases (name, holder, until)
VALUES (:name, :holder, (julianday('now') - 2440587.5) * 86400.0 + :ttl_s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE leases.holder = excluded.holder
   OR leases.until < (julianday('now') - 2440587.5) * 86400.0
RETURNING holder;

-- name: acquire_leases
-- acquire_lease, run once per name within one write (SQLite has no unnest).
INSERT INTO leases (name, holder, until)
VALUES (:name, :holder, (julianday('now') - 2440587.5) * 86400.0 + :ttl_s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE leases.holder = excluded.holder
   OR leases.until < (julianday('now') - 2440587.5) * 86400.0
RETURNING holder;

-- name: list_leases
-- Unexpired leases whose names start with :prefix (node heartbeats, partition owners),
-- on the database's clock as in acquire_lease.
SELECT name, holder, until FROM leases
WHERE substr(name, 1, length(:prefix)) = :prefix
  AND until >= (julianday('now') - 2440587.5) * 86400.0;

-- name: release_lease
DELETE FROM leases WHERE name = :name AND holder = :holder;

-- name: keep_secret
-- A shared secret is made once: the first node's stays, later candidates are dropped.
INSERT INTO node_secrets (name, value, created_at) VALUES (:name, :value, :now)
ON CONFLICT (name) DO NOTHING;

-- name: get_secret
SELECT value FROM node_secrets WHERE name = :name;
