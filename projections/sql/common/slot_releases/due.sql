-- Up to $2 holds due for release ($1: the projection's name), through the `due` index.
SELECT agent_id, session_id
FROM rm_slot_holds
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
  AND due = 1
ORDER BY agent_id, session_id
LIMIT $2
