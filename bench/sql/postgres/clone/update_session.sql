-- The write of a session's read-modify-write: session $1 gets status $2.
UPDATE bench_sessions SET status = $2, updated_at = now() WHERE id = $1
