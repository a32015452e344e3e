-- Sessions $2 (a list of ids) left PENDING (generation $1).
DELETE FROM rm_pending_queue WHERE generation = $1 AND session_id = ANY($2)
