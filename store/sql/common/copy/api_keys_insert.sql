-- Writes one copied api_keys row exactly as it was stored.
INSERT INTO api_keys (id, key_hash, role, owner, agent_id, description, created_at, revoked_at,
                      access_key, secret_sealed)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
