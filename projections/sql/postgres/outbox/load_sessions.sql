-- The outbox's rows of the sessions $2 (a list), generation $1.
SELECT session_id, name, owner, session_type, scaling_group, status, callback_url
FROM rm_webhook_sessions
WHERE generation = $1 AND session_id = ANY($2)
