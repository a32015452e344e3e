-- The keypair with access key $1, unless it was revoked: id, role, owner, agent id and
-- the sealed secret.
SELECT id, role, owner, agent_id, secret_sealed FROM api_keys
WHERE access_key = $1 AND revoked_at IS NULL AND secret_sealed IS NOT NULL
