-- One page of api_keys as stored (hashes, roles, revocations, keypairs with their sealed
-- secrets), in id order: $1 rows after skipping $2.
SELECT id, key_hash, role, owner, agent_id, description, created_at, revoked_at,
       access_key, secret_sealed
FROM api_keys
ORDER BY id
LIMIT $1 OFFSET $2
