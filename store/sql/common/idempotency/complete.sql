-- Stores the response ($4 status, $5 body, at $6) of request $3 holding key $2 of $1.
UPDATE idempotency_keys SET status_code = $4, response = $5, completed_at = $6
WHERE scope = $1 AND key = $2 AND request_id = $3
