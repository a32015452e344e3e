-- Fills the (empty) baseline status table with $1 PENDING rows, ids 's0' .. 's<$1-1>'.
INSERT INTO bench_session_status (id, status, updated_at)
SELECT 's' || g, 'PENDING', now()
FROM generate_series(0, $1 - 1) AS g
