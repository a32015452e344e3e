-- Writes each touched row of `rm_background_tasks` back once, in generation $1: $2 is a
-- JSON array with one object per row (id, doc as its JSON text, first_position,
-- last_position and the indexed columns). A row that exists gets the new document, last
-- position and columns; its first position stays.
INSERT INTO rm_background_tasks (
    generation, id, doc, first_position, last_position,
    owner, kind, status)
SELECT $1, r.id, r.doc, r.first_position, r.last_position, r.owner, r.kind, r.status
FROM jsonb_to_recordset($2::jsonb) AS r(id text, doc text, first_position bigint,
     last_position bigint, owner text, kind text, status text)
ON CONFLICT (generation, id) DO UPDATE
SET doc = excluded.doc,
    last_position = excluded.last_position,
    owner = excluded.owner,
    kind = excluded.kind,
    status = excluded.status
