-- Subscription $2 was deleted (generation $1): nothing more is delivered to it.
DELETE FROM rm_webhook_targets WHERE generation = $1 AND webhook_id = $2
