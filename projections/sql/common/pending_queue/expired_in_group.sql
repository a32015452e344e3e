-- Up to $3 of group $4's sessions whose deadline is at or before $2 (epoch ms),
-- earliest first, through the per-group deadline index ($1: the projection's name).
SELECT session_id, scaling_group, owner, session_type, priority, enqueue_position,
       enqueued_at, deadline_ms, retries, last_try, queue_position, queue_reason
FROM rm_pending_queue
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND deadline_ms IS NOT NULL AND deadline_ms <= $2
  AND scaling_group = $4
ORDER BY deadline_ms
LIMIT $3
