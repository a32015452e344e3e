-- Stores a key: $1 id, $2 SHA-256 of the key (hex), $3 role, $4 owner (users),
-- $5 agent id (agents), $6 description, $7 created (RFC 3339).
INSERT INTO api_keys (id, key_hash, role, owner, agent_id, description, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
