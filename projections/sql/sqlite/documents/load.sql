-- The rows of one document table (`{table}`) with ids $2 (a JSON array) in generation
-- $1, as a batch loads them once before folding.
SELECT id, doc, first_position, last_position
FROM {table}
WHERE generation = $1 AND id IN (SELECT value FROM json_each($2))
