-- Recomputes the deadlines of group $3's waiting sessions (generation $2) for a
-- pending_timeout of $1 seconds (0: no deadline); the caller bounds $1 so the sum
-- cannot overflow.
UPDATE rm_pending_queue
SET deadline_ms = CASE WHEN $1 > 0 THEN enqueued_ms + $1 * 1000 ELSE NULL END
WHERE generation = $2 AND scaling_group = $3
