-- Secret $1 of subscription $2, sealed ($3), created at $4 (RFC 3339).
INSERT INTO webhook_secrets (secret_id, webhook_id, secret_sealed, created_at)
VALUES ($1, $2, $3, $4)
