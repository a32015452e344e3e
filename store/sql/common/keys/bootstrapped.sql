-- The key the store was bootstrapped with, if it ever was.
SELECT key_id FROM api_bootstrap WHERE singleton = 1
