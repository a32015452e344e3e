-- Hands a record still in flight from holder $3 to request $4 (from $5); affects no row
-- when it was completed or taken over meanwhile.
UPDATE idempotency_keys SET request_id = $4, created_at = $5
WHERE scope = $1 AND key = $2 AND request_id = $3 AND status_code IS NULL
