-- The head of chain ($1 target, $2 session) ended (delivered or dead): its later
-- deliveries that were never attempted are due now ($3, unix ms).
-- ("pending" written as NOT IN the other three so that only the chain index fits:
-- see outbox/due.sql.)
UPDATE webhook_deliveries
SET next_attempt_ms = $3
WHERE target = $1 AND session_id = $2 AND status NOT IN ('failed', 'delivered', 'dead') AND next_attempt_ms > $3
