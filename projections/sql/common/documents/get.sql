-- The document of id $2 in one document table (`{table}`), live generation ($1: the
-- projection's name).
SELECT doc FROM {table} WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1) AND id = $2
