-- The head of chain ($1 target, $2 session) failed and retries at $3 (unix ms): its
-- later deliveries that were never attempted wait until then too, so the due query
-- does not see them again and again meanwhile.
-- ("pending" written as NOT IN the other three so that only the chain index fits:
-- see outbox/due.sql.)
UPDATE webhook_deliveries
SET next_attempt_ms = $3
WHERE target = $1 AND session_id = $2 AND status NOT IN ('failed', 'delivered', 'dead') AND next_attempt_ms < $3
