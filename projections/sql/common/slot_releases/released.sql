-- Agent $2 gave back the slots of session $3 (generation $1).
DELETE FROM rm_slot_holds WHERE generation = $1 AND agent_id = $2 AND session_id = $3
