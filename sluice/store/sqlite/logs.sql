-- SQLite. Captured log lines of attempts (DESIGN §8 "Logs"), apart from the task row.

-- name: log_fence
-- Lines of a running attempt are kept only from the worker that holds it, or held it
-- until it ended or its lease ran out (so a dead worker's last lines stay).
SELECT 1 FROM tasks
WHERE id = :task_id AND tenant_id = :tenant_id AND attempt = :attempt AND lease_owner = :worker
UNION ALL
SELECT 1 FROM attempts
WHERE tenant_id = :tenant_id AND task_id = :task_id AND attempt = :attempt AND worker = :worker
LIMIT 1;

-- name: insert_logs
INSERT INTO task_logs (tenant_id, task_id, attempt, seq, at, level, stream, logger, message,
                       extra)
VALUES (:tenant_id, :task_id, :attempt, :seq, :at, :level, :stream, :logger, :message, :extra)
ON CONFLICT DO NOTHING;

-- name: drop_logs
-- Lines [lo, hi) of an attempt that fell out of its tail window.
DELETE FROM task_logs
WHERE tenant_id = :tenant_id AND task_id = :task_id AND attempt = :attempt
  AND seq >= :lo AND seq < :hi;

-- name: log_bytes
-- What each attempt's lines take, for the task's budget across attempts.
SELECT attempt, SUM(length(message) + length(logger) + 48) FROM task_logs
WHERE tenant_id = :tenant_id AND task_id = :task_id AND seq >= 0
GROUP BY attempt ORDER BY attempt;

-- name: drop_attempt_logs
DELETE FROM task_logs WHERE tenant_id = :tenant_id AND task_id = :task_id AND attempt = :attempt;

-- name: list_logs
-- A page of a task's lines in order, after a cursor (attempt, seq), filtered.
SELECT attempt, seq, at, level, stream, logger, message, extra FROM task_logs
WHERE tenant_id = :tenant_id AND task_id = :task_id
  AND (attempt > :after_attempt OR (attempt = :after_attempt AND seq > :after_seq))
  AND (:attempt IS NULL OR attempt = :attempt)
  AND (level >= :level OR stream = 'marker')
  AND (:text IS NULL OR instr(lower(message), lower(:text)) > 0)
ORDER BY attempt, seq
LIMIT :limit;

-- name: logs_past
-- Retention: lines written in (after, before], oldest first, with their task's state
-- (NULL once the task is gone).
SELECT l.tenant_id, l.task_id, l.attempt, l.seq, l.at, t.state FROM task_logs l
LEFT JOIN tasks t ON t.id = l.task_id AND t.tenant_id = l.tenant_id
WHERE l.at > :after AND l.at <= :before
ORDER BY l.at
LIMIT :limit;

-- name: delete_logs
DELETE FROM task_logs
WHERE tenant_id = :tenant_id AND task_id = :task_id AND attempt = :attempt AND seq = :seq;

-- name: delete_task_logs
DELETE FROM task_logs WHERE tenant_id = :tenant_id AND task_id = :id;

-- name: mark_started
-- A running attempt's start, from the worker that holds it.
UPDATE tasks SET started_at = :started_at
WHERE id = :task_id AND tenant_id = :tenant_id AND attempt = :attempt
  AND state = 'running' AND lease_owner = :worker;

-- name: record_progress
-- A running attempt's latest progress (JSON), from the worker that holds it.
UPDATE tasks SET progress = :progress
WHERE id = :task_id AND tenant_id = :tenant_id AND attempt = :attempt
  AND state = 'running' AND lease_owner = :worker;
