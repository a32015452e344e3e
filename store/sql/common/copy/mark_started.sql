-- Marks this store as a copy in progress from source $1 (redacted URL), started at $2.
INSERT INTO copy_in_progress (id, source, started_at) VALUES (1, $1, $2)
