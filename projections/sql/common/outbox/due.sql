-- Up to $3 deliveries to attempt at $2 (unix ms): open (pending or failed), due, the
-- earliest open one of their chain (same target, same session: per-session order per
-- endpoint), and either a callback or to a subscription that is enabled in the
-- outbox's live generation ($1: the projection's name). A deleted subscription has no
-- target row, so its deliveries are never attempted.
--
-- The chain check says "open" as NOT IN ('delivered', 'dead') (the same thing: the
-- four statuses are a CHECK on PostgreSQL) on purpose: written as IN ('pending',
-- 'failed') it matches the partial due index, and PostgreSQL with statistics taken
-- while few deliveries were open used that index for the check, scanning every open
-- delivery once per candidate (7.8 s at 5,000 open; sessiond-bench webhooks). As it is,
-- the only index for the check is the chain index (target, session_id, position).
SELECT d.delivery_id, d.target, d.session_id, d.owner, COALESCE(d.url, t.url) AS url,
       d.position, d.attempts, d.round_attempts, d.next_attempt_ms, d.body, t.secrets
FROM webhook_deliveries d
LEFT JOIN rm_webhook_targets t
       ON t.webhook_id = d.target
      AND t.generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
WHERE d.status IN ('pending', 'failed')
  AND d.next_attempt_ms <= $2
  AND (d.target = 'callback' OR t.enabled = 1)
  AND NOT EXISTS (
      SELECT 1 FROM webhook_deliveries e
      WHERE e.target = d.target
        AND e.session_id = d.session_id
        AND e.position < d.position
        AND e.status NOT IN ('delivered', 'dead'))
ORDER BY d.next_attempt_ms, d.position
LIMIT $3
