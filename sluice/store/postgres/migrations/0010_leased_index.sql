-- The partial index of running rows is for the statements that want every running row
-- (the reaper, running counts, a worker's leases), never for those that name their rows
-- by id (finish, renew, release). With statistics taken while nothing ran, the planner
-- thought the running set empty and joined a frame of finishes against the whole index,
-- which fills with dead entries during a drain: 40-60 ms a finish, 18,000 to 4,600
-- tasks/s (docs/operations.md). The index now also requires lease_until IS NOT NULL,
-- which every running row has but which the by-id statements never state, so the planner
-- cannot pick it for them; the others state it (or `lease_until < $1`, which implies it).
DROP INDEX tasks_leased;
CREATE INDEX tasks_leased ON tasks(lease_until)
    WHERE state = 'running' AND lease_until IS NOT NULL;
