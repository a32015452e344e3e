-- Fills the (empty) baseline vfolder table with $1 'ready' rows, ids 'v0' .. 'v<$1-1>'.
INSERT INTO bench_vfolders (id, status, updated_at)
SELECT 'v' || g, 'ready', now()
FROM generate_series(0, $1 - 1) AS g
