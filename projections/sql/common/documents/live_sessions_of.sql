-- Owner $2's sessions that count against their limits (neither PENDING nor terminal),
-- live generation ($1: the projection's name), through the owner index.
SELECT doc
FROM rm_sessions
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND owner = $2
  AND status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')
