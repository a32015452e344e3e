-- A new PENDING session $1 mounting folder $2.
INSERT INTO bench_sessions (id, vfolder_id, status, updated_at)
VALUES ($1, $2, 'PENDING', now())
