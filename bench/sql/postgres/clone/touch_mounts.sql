-- The clone's write to the sessions mounting folder $1 (the original design recorded
-- on them that their folder was being cloned).
UPDATE bench_sessions SET updated_at = now() WHERE vfolder_id = $1
