-- Fills the (empty) baseline session table with $1 PENDING rows, ids 's0' ..
-- 's<$1-1>', row n mounting folder 'v<n div $2>' (each folder's sessions contiguous:
-- 's0' .. 's<$2-1>' mount 'v0', the folder being cloned).
WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < $1)
INSERT INTO bench_sessions (id, vfolder_id, status, updated_at)
SELECT 's' || n, 'v' || (n / $2), 'PENDING', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM g
