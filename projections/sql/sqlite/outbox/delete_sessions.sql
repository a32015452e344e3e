-- The sessions $2 (a JSON array) ended: nothing more changes (generation $1).
DELETE FROM rm_webhook_sessions
WHERE generation = $1 AND session_id IN (SELECT value FROM json_each($2))
