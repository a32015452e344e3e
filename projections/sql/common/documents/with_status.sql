-- The documents of one document table (`{table}`) with status $2, live generation ($1:
-- the projection's name), in first-position order (through the status index).
SELECT doc FROM {table} WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1) AND status = $2 ORDER BY first_position
