-- The bench's deliveries to target $1 (its subscription): id, the event's recorded_at
-- (unix ms, the outbox's created_ms: the commit the change came from), when the
-- dispatcher recorded it delivered (unix ms, NULL while open) and its attempts.
SELECT delivery_id, created_ms, delivered_ms, attempts
FROM webhook_deliveries
WHERE target = $1
