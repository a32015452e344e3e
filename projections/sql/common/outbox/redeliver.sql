-- Send delivery $2 of target $1 again, now ($3, unix ms), with a fresh retry schedule.
-- Returns the row when it exists.
UPDATE webhook_deliveries
SET status = 'pending',
    round_attempts = 0,
    next_attempt_ms = $3
WHERE target = $1 AND delivery_id = $2
RETURNING delivery_id
