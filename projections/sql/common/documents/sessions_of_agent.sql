-- The sessions agent $2 must act on (start, or stop until it reports the kernel
-- ended), live generation ($1: the projection's name), through the agent index.
SELECT doc
FROM rm_sessions
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND agent_id = $2
ORDER BY id
