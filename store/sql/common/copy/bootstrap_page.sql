-- The bootstrap record (at most one row): $1 rows after skipping $2.
SELECT key_id, created_at
FROM api_bootstrap
ORDER BY singleton
LIMIT $1 OFFSET $2
