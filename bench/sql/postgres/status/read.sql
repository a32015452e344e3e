-- The read of the status-row read-modify-write: the status of row $1.
SELECT status FROM bench_session_status WHERE id = $1
