-- Every key (revoked ones too), oldest first; never the hashes.
SELECT id, role, owner, agent_id, description, created_at, revoked_at
FROM api_keys
ORDER BY created_at, id
