-- Shuffle sharding (DESIGN §6): the partition a task was placed in at submit.
ALTER TABLE tasks ADD COLUMN part INTEGER NOT NULL DEFAULT 0;
