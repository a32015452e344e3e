-- The long reader's query: an aggregate over the whole status table. No arguments.
SELECT status, count(*), max(updated_at) FROM bench_session_status GROUP BY status
