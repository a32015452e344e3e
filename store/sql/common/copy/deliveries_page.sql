-- One page of webhook_deliveries (the outbox with the dispatcher's progress: not
-- generation-scoped, so a rebuild of the target's projections would not recreate it
-- as it was): $1 rows after skipping $2.
SELECT delivery_id, target, session_id, owner, url, position, status, attempts,
       round_attempts, last_status_code, last_error, next_attempt_ms, created_ms,
       delivered_ms, body
FROM webhook_deliveries
ORDER BY delivery_id
LIMIT $1 OFFSET $2
