-- Creates projection $1's checkpoint at the start of the log if it has none (data,
-- not schema); $2: now (RFC 3339).
INSERT INTO projection_checkpoints (name, transaction_id, position, generation, updated_at, failures)
VALUES ($1, 0, 0, 1, $2, 0)
ON CONFLICT (name) DO NOTHING
