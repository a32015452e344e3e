-- Empties the baseline status table before a status cell. No arguments.
TRUNCATE bench_session_status
