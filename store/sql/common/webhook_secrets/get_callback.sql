-- The sealed callback secret of owner $1.
SELECT secret_sealed FROM callback_secrets WHERE owner = $1
