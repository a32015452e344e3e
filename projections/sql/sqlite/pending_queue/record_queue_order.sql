-- The queue order of sessions the last scheduling pass did not evaluate, live
-- generation ($1: the projection's name): $2 is a JSON array of {session_id,
-- queue_position, queue_reason} (NULLs clear them). Bookkeeping, not an event.
-- The batch is materialised first and drives the join, so each row is found through
-- the primary key: without it SQLite scans the queue and, for each row, the whole
-- array (seconds for a few thousand pending sessions, holding the one writer).
WITH r AS MATERIALIZED (
    SELECT value ->> '$.session_id' AS session_id,
           value ->> '$.queue_position' AS queue_position,
           value ->> '$.queue_reason' AS queue_reason
    FROM json_each($2)
)
UPDATE rm_pending_queue
SET queue_position = r.queue_position, queue_reason = r.queue_reason
FROM r
WHERE rm_pending_queue.generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND rm_pending_queue.session_id = r.session_id
