-- Writes each touched row of `rm_sessions` back once, in generation $1: $2 is a JSON
-- array with one object per row (id, doc as its JSON text, first_position, last_position and
-- the indexed columns). A row that exists gets the new document, last position and
-- columns; its first position stays.
INSERT INTO rm_sessions (
    generation, id, doc, first_position, last_position,
    owner, name, status, scaling_group, session_type, agent_id)
SELECT $1, r.id, r.doc, r.first_position, r.last_position,
       r.owner, r.name, r.status, r.scaling_group, r.session_type, r.agent_id
FROM jsonb_to_recordset($2::jsonb) AS r(id text, doc text, first_position bigint,
     last_position bigint,
     owner text, name text, status text, scaling_group text, session_type text,
     agent_id text)
ON CONFLICT (generation, id) DO UPDATE
SET doc = excluded.doc,
    last_position = excluded.last_position,
    owner = excluded.owner,
    name = excluded.name,
    status = excluded.status,
    scaling_group = excluded.scaling_group,
    session_type = excluded.session_type,
    agent_id = excluded.agent_id
