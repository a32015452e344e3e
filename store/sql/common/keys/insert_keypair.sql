-- Stores a keypair: $1 id, $2 SHA-256 of a random value nobody holds (hex), $3 role,
-- $4 owner (users), $5 agent id (agents), $6 description, $7 created (RFC 3339),
-- $8 access key, $9 the secret sealed with the key-encryption key.
INSERT INTO api_keys (id, key_hash, role, owner, agent_id, description, created_at, access_key, secret_sealed)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
