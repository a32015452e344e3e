-- Analyzes the freshly filled baseline session table, so the planner knows its size.
-- No arguments.
ANALYZE bench_sessions
