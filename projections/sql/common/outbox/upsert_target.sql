-- Subscription $2 as of this point of the log (generation $1): enabled $3, url $4,
-- filter $5 (JSON text), active secrets $6 (JSON text).
INSERT INTO rm_webhook_targets (generation, webhook_id, enabled, url, filter, secrets)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (generation, webhook_id) DO UPDATE
SET enabled = excluded.enabled,
    url = excluded.url,
    filter = excluded.filter,
    secrets = excluded.secrets
