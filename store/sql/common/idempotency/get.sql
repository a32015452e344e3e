-- The record of key $2 in scope $1.
SELECT request_hash, request_id, status_code, response, created_at
FROM idempotency_keys
WHERE scope = $1 AND key = $2
