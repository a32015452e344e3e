-- Every (id, document) of one document table (`{table}`), live generation ($1: the
-- projection's name), by id (for comparisons with a fresh fold).
SELECT id, doc FROM {table} WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1) ORDER BY id
