-- The clone's range read: the sessions mounting folder $1.
SELECT id, status FROM bench_sessions WHERE vfolder_id = $1
