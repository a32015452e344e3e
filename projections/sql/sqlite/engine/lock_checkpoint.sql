-- Projection $1's checkpoint (SQLite's single writer already serialises).
SELECT transaction_id, position, generation FROM projection_checkpoints WHERE name = $1
