-- Fills the (empty) baseline session table with $1 PENDING rows, ids 's0' ..
-- 's<$1-1>', row n mounting folder 'v<n div $2>' (each folder's sessions contiguous:
-- 's0' .. 's<$2-1>' mount 'v0', the folder being cloned).
INSERT INTO bench_sessions (id, vfolder_id, status, updated_at)
SELECT 's' || g, 'v' || (g / $2), 'PENDING', now()
FROM generate_series(0, $1 - 1) AS g
