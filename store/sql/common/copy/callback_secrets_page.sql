-- One page of callback_secrets (sealed; copied as sealed): $1 rows after skipping $2.
SELECT owner, secret_sealed, created_at
FROM callback_secrets
ORDER BY owner
LIMIT $1 OFFSET $2
