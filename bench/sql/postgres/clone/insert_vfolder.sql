-- The clone's target folder $1, with status $2 (inserted when the copy is done).
INSERT INTO bench_vfolders (id, status, updated_at) VALUES ($1, $2, now())
