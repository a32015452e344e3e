-- Projection $1's checkpoint, without locking.
SELECT transaction_id, position, generation FROM projection_checkpoints WHERE name = $1
