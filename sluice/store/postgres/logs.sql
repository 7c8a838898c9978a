-- PostgreSQL. Captured log lines of attempts (DESIGN §8 "Logs"), apart from the task row.

-- name: log_fence
-- Lines of a running attempt are kept only from the worker that holds it, or held it
-- until it ended or its lease ran out (so a dead worker's last lines stay).
-- $1 tenant_id, $2 task_id, $3 attempt, $4 worker
SELECT EXISTS (SELECT 1 FROM tasks WHERE id = $2 AND tenant_id = $1 AND attempt = $3
                                     AND lease_owner = $4)
    OR EXISTS (SELECT 1 FROM attempts WHERE tenant_id = $1 AND task_id = $2 AND attempt = $3
                                        AND worker = $4);

-- name: insert_logs
-- One array per column.
INSERT INTO task_logs (tenant_id, task_id, attempt, seq, at, level, stream, logger, message,
                       extra)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::float8[],
                     $6::smallint[], $7::text[], $8::text[], $9::text[], $10::text[])
ON CONFLICT DO NOTHING;

-- name: drop_logs
-- Lines [lo, hi) of an attempt that fell out of its tail window.
DELETE FROM task_logs
WHERE tenant_id = $1 AND task_id = $2 AND attempt = $3 AND seq >= $4 AND seq < $5;

-- name: log_bytes
-- What each attempt's lines take, for the task's budget across attempts.
SELECT attempt, SUM(length(message) + length(logger) + 48)::bigint FROM task_logs
WHERE tenant_id = $1 AND task_id = $2 AND seq >= 0
GROUP BY attempt ORDER BY attempt;

-- name: drop_attempt_logs
DELETE FROM task_logs WHERE tenant_id = $1 AND task_id = $2 AND attempt = $3;

-- name: list_logs
-- A page of a task's lines in order, after a cursor (attempt, seq), filtered.
-- $1 tenant_id, $2 task_id, $3 after_attempt, $4 after_seq, $5 attempt, $6 level, $7 text,
-- $8 limit
SELECT attempt, seq, at, level, stream, logger, message, extra FROM task_logs
WHERE tenant_id = $1 AND task_id = $2 AND (attempt, seq) > ($3, $4)
  AND ($5::int IS NULL OR attempt = $5)
  AND (level >= $6 OR stream = 'marker')
  AND ($7::text IS NULL OR strpos(lower(message), lower($7)) > 0)
ORDER BY attempt, seq
LIMIT $8;

-- name: logs_past
-- Retention: lines written in (after, before], oldest first, with their task's state
-- (NULL once the task is gone).
SELECT l.tenant_id, l.task_id, l.attempt, l.seq, l.at, t.state FROM task_logs l
LEFT JOIN tasks t ON t.id = l.task_id AND t.tenant_id = l.tenant_id
WHERE l.at > $1 AND l.at <= $2
ORDER BY l.at
LIMIT $3;

-- name: delete_logs
-- Lines named by (tenant, task, attempt, seq), one array per column.
DELETE FROM task_logs l
USING unnest($1::text[], $2::text[], $3::int[], $4::int[]) AS d(tenant_id, task_id, attempt, seq)
WHERE l.tenant_id = d.tenant_id AND l.task_id = d.task_id AND l.attempt = d.attempt
  AND l.seq = d.seq;

-- name: delete_task_logs
DELETE FROM task_logs WHERE tenant_id = $1 AND task_id = ANY($2::text[]);

-- name: mark_started
-- Running attempts' starts, from the workers that hold them; one array per column.
UPDATE tasks t SET started_at = s.started_at
FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::float8[])
     AS s(tenant_id, id, attempt, worker, started_at)
WHERE t.id = s.id AND t.tenant_id = s.tenant_id AND t.attempt = s.attempt
  AND t.state = 'running' AND t.lease_owner = s.worker;

-- name: record_progress
-- Running attempts' latest progress (JSON), from the workers that hold them; one array
-- per column.
UPDATE tasks t SET progress = s.progress
FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[])
     AS s(tenant_id, id, attempt, worker, progress)
WHERE t.id = s.id AND t.tenant_id = s.tenant_id AND t.attempt = s.attempt
  AND t.state = 'running' AND t.lease_owner = s.worker;
