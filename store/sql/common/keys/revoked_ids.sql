-- The ids of every revoked key.
SELECT id FROM api_keys WHERE revoked_at IS NOT NULL
