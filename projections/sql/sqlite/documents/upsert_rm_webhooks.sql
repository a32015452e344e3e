-- Writes each touched row of `rm_webhooks` back once, in generation $1: $2 is a JSON
-- array with one object per row (id, doc as its JSON text, first_position,
-- last_position, enabled). A row that exists gets the new document, last position and
-- columns; its first position stays. (`WHERE true` lets SQLite parse the upsert
-- clause after a SELECT.)
INSERT INTO rm_webhooks (generation, id, doc, first_position, last_position, enabled)
SELECT $1, value ->> '$.id', value ->> '$.doc', value ->> '$.first_position',
       value ->> '$.last_position', value ->> '$.enabled'
FROM json_each($2)
WHERE true
ON CONFLICT (generation, id) DO UPDATE
SET doc = excluded.doc,
    last_position = excluded.last_position,
    enabled = excluded.enabled
