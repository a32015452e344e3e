-- Session $2's queue row, live generation ($1: the projection's name).
SELECT session_id, scaling_group, owner, session_type, priority, enqueue_position,
       enqueued_at, deadline_ms, retries, last_try, queue_position, queue_reason
FROM rm_pending_queue
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND session_id = $2
