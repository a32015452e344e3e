-- Every hold of the live generation ($1: the projection's name) as (agent, session, due).
SELECT agent_id, session_id, due
FROM rm_slot_holds
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
ORDER BY agent_id, session_id
