-- Session $2 ended: every hold of it is due for release (generation $1).
UPDATE rm_slot_holds SET due = 1 WHERE generation = $1 AND session_id = $2
