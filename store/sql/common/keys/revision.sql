-- The revocation revision every replica's key watcher polls.
SELECT revision FROM api_key_revision WHERE singleton = 1
