-- The read of a session's read-modify-write: the status of session $1.
SELECT status FROM bench_sessions WHERE id = $1
