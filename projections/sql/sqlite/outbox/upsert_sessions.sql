-- Writes the touched session rows of generation $1 back: $2 is a JSON array of
-- {session_id, name, owner, session_type, scaling_group, status, callback_url}.
-- (`WHERE true` lets SQLite parse the upsert clause after a SELECT.)
INSERT INTO rm_webhook_sessions (generation, session_id, name, owner, session_type,
                                 scaling_group, status, callback_url)
SELECT $1, value ->> '$.session_id', value ->> '$.name', value ->> '$.owner',
       value ->> '$.session_type', value ->> '$.scaling_group', value ->> '$.status',
       value ->> '$.callback_url'
FROM json_each($2)
WHERE true
ON CONFLICT (generation, session_id) DO UPDATE
SET status = excluded.status
