-- The sessions $2 (a list) ended: nothing more changes (generation $1).
DELETE FROM rm_webhook_sessions WHERE generation = $1 AND session_id = ANY($2)
