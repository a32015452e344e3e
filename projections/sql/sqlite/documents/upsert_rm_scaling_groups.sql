-- Writes each touched row of `rm_scaling_groups` back once, in generation $1: $2 is a JSON
-- array with one object per row (id, doc as its JSON text, first_position, last_position and
-- the indexed columns). A row that exists gets the new document, last position and
-- columns; its first position stays. (`WHERE true` lets SQLite parse the upsert
-- clause after a SELECT.)
INSERT INTO rm_scaling_groups (
    generation, id, doc, first_position, last_position,
    is_active)
SELECT $1, value ->> '$.id', value ->> '$.doc', value ->> '$.first_position',
       value ->> '$.last_position', value ->> '$.is_active'
FROM json_each($2)
WHERE true
ON CONFLICT (generation, id) DO UPDATE
SET doc = excluded.doc,
    last_position = excluded.last_position,
    is_active = excluded.is_active
