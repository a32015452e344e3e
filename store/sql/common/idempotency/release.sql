-- Gives key $2 of scope $1 up (request $3 holding it ended without a response).
DELETE FROM idempotency_keys
WHERE scope = $1 AND key = $2 AND request_id = $3 AND status_code IS NULL
