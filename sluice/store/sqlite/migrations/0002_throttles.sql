-- Throttled attempts (flow control) do not use up max_attempts; they are counted apart.
ALTER TABLE tasks ADD COLUMN throttles INTEGER NOT NULL DEFAULT 0;
