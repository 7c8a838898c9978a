-- Issue 18 point 6: a running attempt's latest progress, as its handler reported it
-- (JSON {done, total, message, at, attempt}); NULL for the tasks that never report any.
ALTER TABLE tasks ADD COLUMN progress TEXT;
