-- Large payloads in a table of their own, written once. SQLite rewrites a row whole
-- when any column changes, its overflow pages included: a 64 KiB payload was written
-- again by the claim and by the finish, and the WAL grew at three times the payload
-- rate (bench/RESULTS.md, issue 20 point 8). A task whose payload is here has an empty
-- one in `tasks` (no payload is empty: it is a JSON object); reads take it from here.
-- Deleting a task deletes its payload (tasks.py `_delete`, the one way tasks go).
CREATE TABLE payloads (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,  -- the task's
    payload TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
