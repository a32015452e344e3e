-- Projection $1's checkpoint as `projections status` shows it.
SELECT transaction_id, position, generation, updated_at, last_error, failures
FROM projection_checkpoints
WHERE name = $1
