-- Writes one copied idempotency_keys row exactly as it was stored.
INSERT INTO idempotency_keys (scope, key, request_hash, request_id, status_code, response,
                              created_at, completed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
