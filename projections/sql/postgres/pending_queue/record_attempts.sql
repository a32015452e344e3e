-- A failed scheduling attempt of sessions $3 (a list of ids) at $2: retries + 1 and
-- last_try, live generation ($1: the projection's name). Bookkeeping, not an event.
UPDATE rm_pending_queue
SET retries = retries + 1, last_try = $2
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND session_id = ANY($3)
