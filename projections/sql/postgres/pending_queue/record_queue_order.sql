-- The queue order of sessions the last scheduling pass did not evaluate, live
-- generation ($1: the projection's name): $2 is a JSON array of {session_id,
-- queue_position, queue_reason} (NULLs clear them). Bookkeeping, not an event.
UPDATE rm_pending_queue AS q
SET queue_position = r.queue_position, queue_reason = r.queue_reason
FROM jsonb_to_recordset($2::jsonb) AS r(session_id text, queue_position bigint, queue_reason text)
WHERE q.generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND q.session_id = r.session_id
