-- Vacuums and analyzes the freshly filled status table, so every status cell starts
-- from the same state. No arguments.
VACUUM ANALYZE bench_session_status
