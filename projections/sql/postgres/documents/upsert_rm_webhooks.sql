-- Writes each touched row of `rm_webhooks` back once, in generation $1: $2 is a JSON
-- array with one object per row (id, doc as its JSON text, first_position,
-- last_position, enabled). A row that exists gets the new document, last position and
-- columns; its first position stays.
INSERT INTO rm_webhooks (generation, id, doc, first_position, last_position, enabled)
SELECT $1, r.id, r.doc, r.first_position, r.last_position, r.enabled
FROM jsonb_to_recordset($2::jsonb) AS r(id text, doc text, first_position bigint,
     last_position bigint, enabled bigint)
ON CONFLICT (generation, id) DO UPDATE
SET doc = excluded.doc,
    last_position = excluded.last_position,
    enabled = excluded.enabled
