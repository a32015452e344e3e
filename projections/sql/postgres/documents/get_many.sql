-- The documents with ids $2 (a list) in one document table (`{table}`), live
-- generation ($1: the projection's name); unknown ids are skipped.
SELECT doc FROM {table} WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1) AND id = ANY($2)
