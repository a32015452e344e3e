-- Writes each touched row of `rm_sessions` back once, in generation $1: $2 is a JSON
-- array with one object per row (id, doc as its JSON text, first_position, last_position and
-- the indexed columns). A row that exists gets the new document, last position and
-- columns; its first position stays. (`WHERE true` lets SQLite parse the upsert
-- clause after a SELECT.)
INSERT INTO rm_sessions (
    generation, id, doc, first_position, last_position,
    owner, name, status, scaling_group, session_type, agent_id)
SELECT $1, value ->> '$.id', value ->> '$.doc', value ->> '$.first_position',
       value ->> '$.last_position', value ->> '$.owner', value ->> '$.name', value ->> '$.status', value ->> '$.scaling_group', value ->> '$.session_type',
       value ->> '$.agent_id'
FROM json_each($2)
WHERE true
ON CONFLICT (generation, id) DO UPDATE
SET doc = excluded.doc,
    last_position = excluded.last_position,
    owner = excluded.owner,
    name = excluded.name,
    status = excluded.status,
    scaling_group = excluded.scaling_group,
    session_type = excluded.session_type,
    agent_id = excluded.agent_id
