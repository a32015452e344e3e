-- The callback secret of owner $1, sealed ($2), created at $3, unless one exists.
INSERT INTO callback_secrets (owner, secret_sealed, created_at)
VALUES ($1, $2, $3)
ON CONFLICT (owner) DO NOTHING
