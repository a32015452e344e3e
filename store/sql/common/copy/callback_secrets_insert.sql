-- Writes one copied callback_secrets row exactly as it was stored.
INSERT INTO callback_secrets (owner, secret_sealed, created_at)
VALUES ($1, $2, $3)
