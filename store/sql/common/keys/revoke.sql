-- Revokes key $1 at $2; a revoked key keeps its first revocation time.
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
