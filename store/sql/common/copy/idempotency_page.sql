-- One page of idempotency_keys (completed and in-flight records): $1 rows after
-- skipping $2.
SELECT scope, key, request_hash, request_id, status_code, response, created_at, completed_at
FROM idempotency_keys
ORDER BY scope, key
LIMIT $1 OFFSET $2
