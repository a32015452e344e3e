-- Every delivery about session $1 (callback and subscriptions), by position.
SELECT delivery_id, target, position, status, attempts, last_status_code, last_error,
       next_attempt_ms, created_ms, delivered_ms, body
FROM webhook_deliveries
WHERE session_id = $1
ORDER BY position, target
