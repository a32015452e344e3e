-- The delivery log of target $1: status $2 ('' for any), after position $3, oldest
-- first, at most $4 rows.
SELECT delivery_id, position, session_id, status, attempts, last_status_code,
       last_error, next_attempt_ms, created_ms, delivered_ms
FROM webhook_deliveries
WHERE target = $1 AND ($2 = '' OR status = $2) AND position > $3
ORDER BY position
LIMIT $4
