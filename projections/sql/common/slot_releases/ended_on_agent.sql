-- Session $2's kernel on agent $3 is gone (the agent reported it): that hold is due
-- for release (generation $1).
UPDATE rm_slot_holds SET due = 1 WHERE generation = $1 AND session_id = $2 AND agent_id = $3
