-- One page of webhook_secrets (sealed; copied as sealed): $1 rows after skipping $2.
SELECT secret_id, webhook_id, secret_sealed, created_at
FROM webhook_secrets
ORDER BY secret_id
LIMIT $1 OFFSET $2
