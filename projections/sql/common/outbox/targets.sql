-- Every subscription the outbox knows of in generation $1, as of its checkpoint.
SELECT webhook_id, enabled, url, filter, secrets
FROM rm_webhook_targets
WHERE generation = $1
ORDER BY webhook_id
