-- Everything GET /v1/sessions/{id} reads, in one round trip: session $2's document
-- (live generation of projection $1), its queue row (live generation of projection
-- $3) and the last sequence of its stream (aggregate type $4; the read model is behind
-- when the stream is ahead of the document's version). One row, NULLs where absent.
SELECT
  (SELECT doc FROM rm_sessions
    WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
      AND id = $2) AS doc,
  (SELECT MAX(sequence) FROM events WHERE aggregate_type = $4 AND aggregate_id = $2) AS last_sequence,
  q.session_id, q.scaling_group, q.owner, q.session_type, q.priority, q.enqueue_position,
  q.enqueued_at, q.deadline_ms, q.retries, q.last_try, q.queue_position, q.queue_reason
FROM (SELECT 1 AS one) AS k
LEFT JOIN rm_pending_queue AS q
  ON q.generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $3), 1)
 AND q.session_id = $2
