-- Sessions $2 (a JSON array of ids) left PENDING (generation $1).
DELETE FROM rm_pending_queue
WHERE generation = $1 AND session_id IN (SELECT value FROM json_each($2))
