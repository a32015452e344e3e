-- Writes each touched row of `rm_agent_occupancy` back once, in generation $1: $2 is a JSON
-- array with one object per row (id, doc as its JSON text, first_position, last_position and
-- the indexed columns). A row that exists gets the new document, last position and
-- columns; its first position stays. (`WHERE true` lets SQLite parse the upsert
-- clause after a SELECT.)
INSERT INTO rm_agent_occupancy (
    generation, id, doc, first_position, last_position,
    scaling_group, status)
SELECT $1, value ->> '$.id', value ->> '$.doc', value ->> '$.first_position',
       value ->> '$.last_position', value ->> '$.scaling_group', value ->> '$.status'
FROM json_each($2)
WHERE true
ON CONFLICT (generation, id) DO UPDATE
SET doc = excluded.doc,
    last_position = excluded.last_position,
    scaling_group = excluded.scaling_group,
    status = excluded.status
