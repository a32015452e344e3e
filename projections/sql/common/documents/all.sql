-- Every document of one document table (`{table}`), live generation ($1: the
-- projection's name), in first-position order.
SELECT doc FROM {table} WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1) ORDER BY first_position
