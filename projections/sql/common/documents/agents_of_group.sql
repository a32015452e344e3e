-- The agents of scaling group $2, live generation ($1: the projection's name), through
-- the (generation, scaling_group) index.
SELECT doc
FROM rm_agent_occupancy
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND scaling_group = $2
ORDER BY first_position
