-- The documents of one document table (`{table}`) that owner $2 owns, live generation
-- ($1: the projection's name), in first-position order (through the owner index).
SELECT doc FROM {table} WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1) AND owner = $2 ORDER BY first_position
