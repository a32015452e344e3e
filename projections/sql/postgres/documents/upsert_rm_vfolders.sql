-- Writes each touched row of `rm_vfolders` back once, in generation $1: $2 is a JSON
-- array with one object per row (id, doc as its JSON text, first_position, last_position and
-- the indexed columns). A row that exists gets the new document, last position and
-- columns; its first position stays.
INSERT INTO rm_vfolders (
    generation, id, doc, first_position, last_position,
    owner, name, status, host)
SELECT $1, r.id, r.doc, r.first_position, r.last_position, r.owner, r.name, r.status, r.host
FROM jsonb_to_recordset($2::jsonb) AS r(id text, doc text, first_position bigint,
     last_position bigint, owner text, name text, status text, host text)
ON CONFLICT (generation, id) DO UPDATE
SET doc = excluded.doc,
    last_position = excluded.last_position,
    owner = excluded.owner,
    name = excluded.name,
    status = excluded.status,
    host = excluded.host
