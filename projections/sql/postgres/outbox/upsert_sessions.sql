-- Writes the touched session rows of generation $1 back: $2 is a JSON array of
-- {session_id, name, owner, session_type, scaling_group, status, callback_url}.
INSERT INTO rm_webhook_sessions (generation, session_id, name, owner, session_type,
                                 scaling_group, status, callback_url)
SELECT $1, r.session_id, r.name, r.owner, r.session_type, r.scaling_group, r.status,
       r.callback_url
FROM jsonb_to_recordset($2::jsonb) AS r(session_id text, name text, owner text,
     session_type text, scaling_group text, status text, callback_url text)
ON CONFLICT (generation, session_id) DO UPDATE
SET status = excluded.status
