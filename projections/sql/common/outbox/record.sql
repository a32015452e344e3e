-- The outcome of one attempt of delivery $1: status $2 (delivered | failed | dead),
-- HTTP status $3 (NULL: no response), error $4, next attempt $5 (unix ms), delivered at
-- $6 (unix ms, NULL unless delivered).
UPDATE webhook_deliveries
SET status = $2,
    attempts = attempts + 1,
    round_attempts = round_attempts + 1,
    last_status_code = $3,
    last_error = $4,
    next_attempt_ms = $5,
    delivered_ms = $6
WHERE delivery_id = $1
