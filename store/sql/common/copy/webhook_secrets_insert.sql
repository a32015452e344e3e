-- Writes one copied webhook_secrets row exactly as it was stored.
INSERT INTO webhook_secrets (secret_id, webhook_id, secret_sealed, created_at)
VALUES ($1, $2, $3, $4)
