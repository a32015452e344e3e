-- Whether any keypair exists (PostgreSQL then needs the key-encryption key at start-up).
SELECT id FROM api_keys WHERE secret_sealed IS NOT NULL LIMIT 1
