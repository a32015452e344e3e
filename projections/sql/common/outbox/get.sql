-- Delivery $2 of target $1, with its body.
SELECT delivery_id, position, session_id, status, attempts, last_status_code,
       last_error, next_attempt_ms, created_ms, delivered_ms
FROM webhook_deliveries
WHERE target = $1 AND delivery_id = $2
