-- Vacuums and analyzes the freshly filled baseline tables, so the writers start from a
-- known state and the planner knows their sizes. No arguments.
VACUUM ANALYZE bench_vfolders, bench_sessions
