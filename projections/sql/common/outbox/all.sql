-- Every delivery (the audit compares them with a fresh fold of the log).
SELECT delivery_id, target, session_id, position
FROM webhook_deliveries
ORDER BY position, delivery_id
