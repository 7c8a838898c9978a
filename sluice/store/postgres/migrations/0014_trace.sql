-- The W3C creation context of a task (OBSERVABILITY §3.3), written once at submit and
-- never changed: the traceparent (55 characters) and an optional tracestate (<= 512).
-- Nullable without a default: adding them rewrites nothing.
ALTER TABLE tasks ADD COLUMN trace_parent text;
ALTER TABLE tasks ADD COLUMN trace_state text;
