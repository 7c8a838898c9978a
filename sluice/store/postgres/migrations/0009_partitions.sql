-- Shuffle sharding (DESIGN §6): the partition a task was placed in at submit. Each
-- partition is dispatched by the node holding its lease ("part:N" in leases). A fast
-- default: adding the column rewrites nothing.
ALTER TABLE tasks ADD COLUMN part smallint NOT NULL DEFAULT 0;
