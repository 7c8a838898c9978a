-- Captured log lines of attempts (DESIGN §8 "Logs"): apart from the task row, one row a
-- line, numbered per attempt without gaps (a gap is where lines were dropped).
CREATE TABLE task_logs (
    tenant_id text NOT NULL,
    task_id text NOT NULL,
    attempt integer NOT NULL,
    seq integer NOT NULL,
    at double precision NOT NULL,
    level smallint NOT NULL,
    stream text NOT NULL,
    logger text NOT NULL,
    message text NOT NULL,
    extra text,
    PRIMARY KEY (tenant_id, task_id, attempt, seq)
);
-- Retention deletes the oldest lines first.
CREATE INDEX task_logs_at ON task_logs(at);
-- When the running attempt started, as soon as its worker says so (an attempt's row
-- holds it once it ends); older than dispatched_at, it was an earlier attempt's.
ALTER TABLE tasks ADD COLUMN started_at double precision;
-- An attempt's stages (DESIGN §8 "Timeline"): when it became ready (so its queued time
-- is known after a retry rewrote the task's ready_at) and when its end was written.
ALTER TABLE attempts ADD COLUMN ready_at double precision;
ALTER TABLE attempts ADD COLUMN recorded_at double precision;
-- Of its wait, the seconds a limit held its function (engine/holds.py).
ALTER TABLE attempts ADD COLUMN held_s double precision;
