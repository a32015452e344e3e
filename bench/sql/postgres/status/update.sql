-- The write of the status-row read-modify-write: row $1 gets status $2.
UPDATE bench_session_status SET status = $2, updated_at = now() WHERE id = $1
