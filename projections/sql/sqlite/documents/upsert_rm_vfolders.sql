-- Writes each touched row of `rm_vfolders` back once, in generation $1: $2 is a JSON
-- array with one object per row (id, doc as its JSON text, first_position, last_position and
-- the indexed columns). A row that exists gets the new document, last position and
-- columns; its first position stays. (`WHERE true` lets SQLite parse the upsert
-- clause after a SELECT.)
INSERT INTO rm_vfolders (
    generation, id, doc, first_position, last_position,
    owner, name, status, host)
SELECT $1, value ->> '$.id', value ->> '$.doc', value ->> '$.first_position',
       value ->> '$.last_position', value ->> '$.owner', value ->> '$.name',
       value ->> '$.status', value ->> '$.host'
FROM json_each($2)
WHERE true
ON CONFLICT (generation, id) DO UPDATE
SET doc = excluded.doc,
    last_position = excluded.last_position,
    owner = excluded.owner,
    name = excluded.name,
    status = excluded.status,
    host = excluded.host
