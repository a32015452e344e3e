-- Projection $1's checkpoint, locked until the transaction ends.
SELECT transaction_id, position, generation
FROM projection_checkpoints
WHERE name = $1
FOR UPDATE
