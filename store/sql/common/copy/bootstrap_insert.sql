-- Writes the copied bootstrap record ($1 key id, $2 created), so the target never
-- creates a second bootstrap admin key.
INSERT INTO api_bootstrap (singleton, key_id, created_at)
VALUES (1, $1, $2)
