-- Agent $2 holds slots for session $3 (generation $1).
INSERT INTO rm_slot_holds (generation, agent_id, session_id, due)
VALUES ($1, $2, $3, 0)
ON CONFLICT (generation, agent_id, session_id) DO NOTHING
