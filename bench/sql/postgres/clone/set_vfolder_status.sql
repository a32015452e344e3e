-- The clone marks a folder: folder $1 gets status $2.
UPDATE bench_vfolders SET status = $2, updated_at = now() WHERE id = $1
