-- Takes the session-level advisory lock $1 if it is free (released when the
-- connection closes).
SELECT pg_try_advisory_lock($1)
