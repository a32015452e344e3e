-- The sealed secret $1.
SELECT secret_sealed FROM webhook_secrets WHERE secret_id = $1
