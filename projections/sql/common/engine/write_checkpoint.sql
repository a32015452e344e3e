-- Moves projection $5's checkpoint to ($1 transaction id, $2 position) of generation $3
-- at $4, and clears its failure record.
UPDATE projection_checkpoints
SET transaction_id = $1, position = $2, generation = $3, updated_at = $4,
    last_error = NULL, failures = 0
WHERE name = $5
