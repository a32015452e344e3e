-- Claims key $2 in scope $1 for a request whose body hashes to $3, held by request $4
-- from $5; affects no row when the key is taken.
INSERT INTO idempotency_keys (scope, key, request_hash, request_id, created_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (scope, key) DO NOTHING
