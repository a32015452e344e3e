-- Fills the (empty) baseline vfolder table with $1 'ready' rows, ids 'v0' .. 'v<$1-1>'.
WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < $1)
INSERT INTO bench_vfolders (id, status, updated_at)
SELECT 'v' || n, 'ready', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM g
