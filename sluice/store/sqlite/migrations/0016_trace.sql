-- The W3C creation context of a task (OBSERVABILITY §3.3), written once at submit and
-- never changed: the traceparent (55 characters) and an optional tracestate (<= 512).
ALTER TABLE tasks ADD COLUMN trace_parent TEXT;
ALTER TABLE tasks ADD COLUMN trace_state TEXT;
