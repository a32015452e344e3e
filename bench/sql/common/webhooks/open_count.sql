-- How many deliveries to target $1 (the bench's subscription) are open: written by the
-- outbox projection and not delivered yet.
SELECT count(*)
FROM webhook_deliveries
WHERE target = $1 AND status IN ('pending', 'failed')
