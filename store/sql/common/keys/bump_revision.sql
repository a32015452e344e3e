-- Tells every replica's key watcher that revocations changed.
UPDATE api_key_revision SET revision = revision + 1 WHERE singleton = 1
