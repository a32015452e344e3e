-- Keypairs (Backend.AI's access key + secret key, SPEC §13): a key row may carry an
-- access key and its secret, sealed with the server's key-encryption key (the secret is
-- needed to check HMAC signatures, so it cannot be hashed). `key_hash` of a keypair row
-- is the hash of a random value nobody holds: a keypair is never a bearer key.
ALTER TABLE api_keys ADD COLUMN access_key TEXT;
ALTER TABLE api_keys ADD COLUMN secret_sealed TEXT;
CREATE UNIQUE INDEX api_keys_access_key ON api_keys (access_key);
