-- The key whose hash is $1, unless it was revoked.
SELECT id, role, owner, agent_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL
