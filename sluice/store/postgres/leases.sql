-- PostgreSQL. Named leases (partition owners, the timers leader), set and judged on the
-- database's own clock, not a `now` parameter: store/base.py says why.

-- name: acquire_lease
-- Take or keep a named lease: granted when free, expired, or already ours. Set and judged
-- on the database's clock; clock_timestamp(), not now(): the time of the judgement itself,
-- not of a transaction's start or of a wait for the row's lock.
-- $1 name, $2 holder, $3 ttl_s; returns the holder after the statement.
INSERT INTO leases (name, holder, until)
VALUES ($1, $2, extract(epoch FROM clock_timestamp())::float8 + $3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE leases.holder = excluded.holder
   OR leases.until < extract(epoch FROM clock_timestamp())::float8
RETURNING holder;

-- name: acquire_leases
-- acquire_lease for many names at once ($1, sorted, so two nodes lock rows in one order);
-- $2 holder, $3 ttl_s; returns the names granted.
INSERT INTO leases (name, holder, until)
SELECT n, $2, extract(epoch FROM clock_timestamp())::float8 + $3 FROM unnest($1::text[]) AS n
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE leases.holder = excluded.holder
   OR leases.until < extract(epoch FROM clock_timestamp())::float8
RETURNING name;

-- name: list_leases
-- Unexpired leases whose names start with $1 (node heartbeats, partition owners), on the
-- database's clock as in acquire_lease.
SELECT name, holder, until FROM leases
WHERE left(name, length($1)) = $1 AND until >= extract(epoch FROM clock_timestamp())::float8;

-- name: release_lease
DELETE FROM leases WHERE name = $1 AND holder = $2;

-- name: keep_secret
-- A shared secret is made once: the first node's stays, later candidates are dropped.
INSERT INTO node_secrets (name, value, created_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO NOTHING;

-- name: get_secret
SELECT value FROM node_secrets WHERE name = $1;
