-- The head of chain ($1 target, $2 session) failed and retries at $3 (unix ms): its
-- later deliveries that were never attempted wait until then too, so the due query
-- does not see them again and again meanwhile.
UPDATE webhook_deliveries
SET next_attempt_ms = $3
WHERE target = $1 AND session_id = $2 AND status = 'pending' AND next_attempt_ms < $3
